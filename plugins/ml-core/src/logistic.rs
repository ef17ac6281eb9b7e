//! Logistic regression with scikit-learn's objective: `0.5·‖W‖² + C·Σ log-loss`, the
//! intercepts unpenalised. Solved by Newton's method with a backtracking line search,
//! which reaches the optimum to machine precision on data of this size.

use nalgebra::{DMatrix, DVector};

/// The logistic function, computed without overflow.
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// Settings of a fit.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Inverse regularisation strength (scikit-learn's `C`).
    pub c: f64,
    pub max_iter: usize,
    /// Stop when the largest gradient component is below this.
    pub tol: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            c: 1.0,
            max_iter: 100,
            tol: 1e-9,
        }
    }
}

/// A fitted model: one coefficient row and intercept per score (one score when binary).
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticFit {
    pub coefficients: Vec<Vec<f64>>,
    pub intercepts: Vec<f64>,
    pub iterations: usize,
}

/// Fits a model for `labels[i]` in `0..classes`. Two classes give a binary model
/// (class 1 positive); more give a multinomial (softmax) model.
pub fn fit(
    columns: &[Vec<f64>],
    labels: &[usize],
    classes: usize,
    s: Settings,
) -> Result<LogisticFit, String> {
    if classes < 2 {
        return Err("logistic regression needs at least two classes".into());
    }
    if labels.iter().any(|&l| l >= classes) {
        return Err("a label is out of range".into());
    }
    let n = labels.len();
    let d = columns.len();
    let w = d + 1; // intercept + weights, per score
    let k = if classes == 2 { 1 } else { classes };
    let p = k * w;
    let xt = |i: usize, j: usize| if j == 0 { 1.0 } else { columns[j - 1][i] };

    // Probabilities of each score for row i under theta.
    let probs = |theta: &DVector<f64>, i: usize| -> Vec<f64> {
        let z: Vec<f64> = (0..k)
            .map(|c| (0..w).map(|j| theta[c * w + j] * xt(i, j)).sum())
            .collect();
        if k == 1 {
            vec![sigmoid(z[0])]
        } else {
            let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let t: f64 = z.iter().map(|v| (v - m).exp()).sum();
            z.iter().map(|v| (v - m).exp() / t).collect()
        }
    };
    let target = |i: usize, c: usize| -> f64 {
        if k == 1 {
            f64::from(u8::from(labels[i] == 1))
        } else {
            f64::from(u8::from(labels[i] == c))
        }
    };
    let objective = |theta: &DVector<f64>| -> f64 {
        let penalty: f64 = (0..k)
            .flat_map(|c| (1..w).map(move |j| c * w + j))
            .map(|ix| theta[ix] * theta[ix])
            .sum();
        let loss: f64 = (0..n)
            .map(|i| {
                let pr = probs(theta, i);
                let q = if k == 1 {
                    if labels[i] == 1 { pr[0] } else { 1.0 - pr[0] }
                } else {
                    pr[labels[i]]
                };
                -q.max(1e-300).ln()
            })
            .sum();
        0.5 * penalty + s.c * loss
    };

    let mut theta = DVector::<f64>::zeros(p);
    let mut f = objective(&theta);
    for iter in 1..=s.max_iter {
        let mut g = DVector::<f64>::zeros(p);
        let mut h = DMatrix::<f64>::zeros(p, p);
        for i in 0..n {
            let pr = probs(&theta, i);
            for a in 0..k {
                let r = pr[a] - target(i, a);
                for j in 0..w {
                    g[a * w + j] += s.c * r * xt(i, j);
                }
                for b in 0..k {
                    let curv = if k == 1 {
                        pr[0] * (1.0 - pr[0])
                    } else {
                        pr[a] * (f64::from(u8::from(a == b)) - pr[b])
                    };
                    if curv == 0.0 {
                        continue;
                    }
                    for j in 0..w {
                        let xj = xt(i, j) * curv * s.c;
                        for l in 0..w {
                            h[(a * w + j, b * w + l)] += xj * xt(i, l);
                        }
                    }
                }
            }
        }
        for c in 0..k {
            for j in 1..w {
                g[c * w + j] += theta[c * w + j];
                h[(c * w + j, c * w + j)] += 1.0;
            }
            // The intercepts are unpenalised; softmax makes their sum a flat direction.
            // A whisker of damping keeps the system solvable without moving the optimum.
            h[(c * w, c * w)] += 1e-9;
        }
        if g.amax() < s.tol {
            return Ok(unpack(&theta, k, w, iter - 1));
        }
        let step = match h.clone().cholesky() {
            Some(ch) => ch.solve(&g),
            None => h.lu().solve(&g).ok_or("the Newton system is singular")?,
        };
        // Backtracking line search on the objective.
        let mut t = 1.0;
        let mut next = &theta - &step * t;
        let mut f_next = objective(&next);
        while f_next > f && t > 1e-12 {
            t *= 0.5;
            next = &theta - &step * t;
            f_next = objective(&next);
        }
        theta = next;
        f = f_next;
        if k > 1 {
            // Softmax is unchanged by a shift of all intercepts: keep them centred.
            let mean = (0..k).map(|c| theta[c * w]).sum::<f64>() / k as f64;
            (0..k).for_each(|c| theta[c * w] -= mean);
        }
    }
    Ok(unpack(&theta, k, w, s.max_iter))
}

fn unpack(theta: &DVector<f64>, k: usize, w: usize, iterations: usize) -> LogisticFit {
    LogisticFit {
        coefficients: (0..k)
            .map(|c| (1..w).map(|j| theta[c * w + j]).collect())
            .collect(),
        intercepts: (0..k).map(|c| theta[c * w]).collect(),
        iterations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradient_vanishes_at_the_binary_optimum() {
        let x: Vec<f64> = (0..40).map(|i| (i as f64 - 20.0) / 5.0).collect();
        let labels: Vec<usize> = x
            .iter()
            .enumerate()
            .map(|(i, v)| usize::from(*v + ((i % 3) as f64 - 1.0) > 0.0))
            .collect();
        let fit = fit(std::slice::from_ref(&x), &labels, 2, Settings::default()).unwrap();
        let (w, b) = (fit.coefficients[0][0], fit.intercepts[0]);
        // d/dw: w + C Σ (σ(z) - t) x = 0 ; d/db: Σ (σ(z) - t) = 0
        let mut gw = w;
        let mut gb = 0.0;
        for (xi, &l) in x.iter().zip(&labels) {
            let r = sigmoid(w * xi + b) - l as f64;
            gw += r * xi;
            gb += r;
        }
        assert!(gw.abs() < 1e-8 && gb.abs() < 1e-8, "gradient {gw} {gb}");
        assert!(w > 0.0);
    }

    #[test]
    fn multinomial_separates_three_clusters() {
        let centers = [-4.0, 0.0, 4.0];
        let mut x = Vec::new();
        let mut labels = Vec::new();
        for (c, m) in centers.iter().enumerate() {
            for i in 0..10 {
                x.push(m + (i as f64 - 4.5) * 0.1);
                labels.push(c);
            }
        }
        let fit = fit(&[x], &labels, 3, Settings::default()).unwrap();
        assert_eq!(fit.coefficients.len(), 3);
        assert!(fit.coefficients[0][0] < fit.coefficients[2][0]);
    }
}
