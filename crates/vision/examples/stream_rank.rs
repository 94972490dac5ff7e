//! How many directions the residual stream uses: for a trained network (the original or a
//! reduced one), every stage's stream width at several shares of its variance on the first
//! 512 training images ([`vision::streams::stream_widths`]), the parameters of the network with
//! the stream so condensed, and its test accuracy without retraining in the principal basis
//! and with the channels of largest magnitude kept. Usage (a few minutes on 2 cores):
//! `cargo run --release -p vision --example stream_rank -- results/cifar10/cs40/original
//! ../shared/data/cifar10`.

use std::path::Path;

use candle_core::Device;
use vision::streams::{cut_streams, stage_widths, stream_statistics, stream_widths, StreamBasis};
use vision::training::{accuracy, load};
use vision::{Downsampling, MobileNetV2Spec, Network};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(stem), Some(data)) = (args.get(1), args.get(2)) else {
        return Err("usage: stream_rank PARAMS_STEM CIFAR_DIR".into());
    };
    let (params, _) = load(Path::new(stem))?;
    let spec = MobileNetV2Spec::torchvision(10, Downsampling::Cifar).with_widths_of(&params)?;
    let net = Network { spec, params };
    let images = vision::pipeline::read_images(Path::new(data), None, None)?;
    let first: Vec<usize> = (0..512).collect();
    let calibration = images.train.batch(&first, None, &Device::Cpu)?.0;
    let moments = stream_statistics(&net, &calibration)?;
    let full = accuracy(&net.spec, &net.params, &images.test, 500, false)?;
    println!(
        "stream widths {:?}: {} parameters, test accuracy {:.2} %",
        stage_widths(&net.spec),
        net.spec.parameter_count(),
        100.0 * full
    );
    println!("share   widths                                  parameters  principal  magnitude");
    for share in [0.9, 0.99, 0.999] {
        let widths: Vec<usize> = stream_widths(&net.spec, &moments, share, 4)?
            .iter()
            .map(|w| w.0)
            .collect();
        let mut acc = Vec::new();
        let mut parameters = 0;
        for basis in [StreamBasis::Principal, StreamBasis::Magnitude] {
            let cut = cut_streams(&net, &moments, &widths, basis)?;
            parameters = cut.spec.parameter_count();
            acc.push(100.0 * accuracy(&cut.spec, &cut.params, &images.test, 500, false)?);
        }
        println!(
            "{share:<6}  {:<38}  {parameters:>10}  {:>8.2} %  {:>8.2} %",
            format!("{widths:?}"),
            acc[0],
            acc[1]
        );
    }
    Ok(())
}
