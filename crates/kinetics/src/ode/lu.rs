//! Dense LU factorization with partial pivoting, for the small Newton matrices of chemistry.

/// `P A = L U` of a square row-major matrix, stored in place.
#[derive(Clone, Debug, Default)]
pub struct DenseLu {
    n: usize,
    lu: Vec<f64>,
    pivots: Vec<usize>,
}

impl DenseLu {
    /// Factorizes `a` (row-major `n x n`); `None` if it is singular to working precision.
    pub fn factor(a: &[f64], n: usize) -> Option<Self> {
        let mut me = DenseLu {
            n,
            lu: a[..n * n].to_vec(),
            pivots: vec![0; n],
        };
        me.factor_in_place().then_some(me)
    }

    /// Re-factorizes a new matrix of the same size, reusing the storage.
    pub fn refactor(&mut self, a: &[f64]) -> bool {
        self.lu.copy_from_slice(&a[..self.n * self.n]);
        self.factor_in_place()
    }

    fn factor_in_place(&mut self) -> bool {
        let n = self.n;
        let lu = &mut self.lu;
        for k in 0..n {
            let mut p = k;
            let mut best = lu[k * n + k].abs();
            for i in k + 1..n {
                let v = lu[i * n + k].abs();
                if v > best {
                    best = v;
                    p = i;
                }
            }
            if best == 0.0 || !best.is_finite() {
                return false;
            }
            self.pivots[k] = p;
            if p != k {
                for j in 0..n {
                    lu.swap(k * n + j, p * n + j);
                }
            }
            let inv = 1.0 / lu[k * n + k];
            let (top, bottom) = lu.split_at_mut((k + 1) * n);
            let row_k = &top[k * n..(k + 1) * n];
            for row in bottom.chunks_exact_mut(n) {
                let l = row[k] * inv;
                row[k] = l;
                if l != 0.0 {
                    for j in k + 1..n {
                        row[j] -= l * row_k[j];
                    }
                }
            }
        }
        true
    }

    /// Solves `A x = b` in place.
    pub fn solve(&self, b: &mut [f64]) {
        let n = self.n;
        for k in 0..n {
            let p = self.pivots[k];
            if p != k {
                b.swap(k, p);
            }
        }
        for i in 0..n {
            let row = &self.lu[i * n..i * n + i];
            let s: f64 = row.iter().zip(&b[..i]).map(|(l, x)| l * x).sum();
            b[i] -= s;
        }
        for i in (0..n).rev() {
            let row = &self.lu[i * n..(i + 1) * n];
            let s: f64 = row[i + 1..].iter().zip(&b[i + 1..]).map(|(u, x)| u * x).sum();
            b[i] = (b[i] - s) / row[i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_a_pivoting_system() {
        let a = [0.0, 2.0, 1.0, 1.0, 1.0, 0.0, 3.0, 0.0, 1.0];
        let lu = DenseLu::factor(&a, 3).unwrap();
        let x = [1.0, -2.0, 0.5];
        let mut b: Vec<f64> = (0..3).map(|i| (0..3).map(|j| a[i * 3 + j] * x[j]).sum()).collect();
        lu.solve(&mut b);
        for (u, v) in b.iter().zip(x) {
            assert!((u - v).abs() < 1e-14);
        }
        assert!(DenseLu::factor(&[1.0, 2.0, 2.0, 4.0], 2).is_none());
    }
}
