//! Where the element-wise passes of training run: rayon's pool, or, next to oneDNN's kernels,
//! oneDNN's own OpenMP team (rayon's threads would compete with its spinning workers for the
//! cores).

use rayon::prelude::*;

use crate::stack::Backend;

/// The threads of the element-wise passes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Team {
    Rayon(usize),
    #[cfg(feature = "onednn")]
    OpenMp(usize),
}

impl Team {
    /// The team that runs beside `backend`'s products.
    pub(crate) fn for_backend(backend: Backend, threads: usize) -> Self {
        match backend {
            #[cfg(feature = "onednn")]
            Backend::OneDnn => Team::OpenMp(threads),
            _ => Team::Rayon(threads),
        }
    }

    /// `f(item)` for every item, in parallel.
    pub(crate) fn run<T: Send>(self, items: Vec<T>, f: impl Fn(T) + Sync) {
        match self {
            Team::Rayon(threads) if threads > 1 => items.into_par_iter().for_each(&f),
            Team::Rayon(_) => items.into_iter().for_each(f),
            #[cfg(feature = "onednn")]
            Team::OpenMp(threads) => {
                let slots: Vec<std::sync::Mutex<Option<T>>> =
                    items.into_iter().map(|t| std::sync::Mutex::new(Some(t))).collect();
                crate::sys::dnnl::parallel_for(threads, slots.len(), &|i| {
                    let item = slots[i].lock().ok().and_then(|mut slot| slot.take());
                    if let Some(item) = item {
                        f(item);
                    }
                });
            }
        }
    }
}
