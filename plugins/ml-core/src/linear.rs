//! Ordinary least squares by QR decomposition (stable where the normal equations are not).

use nalgebra::{DMatrix, DVector};

/// A fitted linear model.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearFit {
    pub coefficients: Vec<f64>,
    pub intercept: f64,
}

/// Fits `y ≈ intercept + X·w`, with `columns[j][i]` feature j of row i.
pub fn fit(columns: &[Vec<f64>], y: &[f64], fit_intercept: bool) -> Result<LinearFit, String> {
    let n = y.len();
    let d = columns.len();
    let p = d + usize::from(fit_intercept);
    if n < p {
        return Err(format!("{n} rows cannot determine {p} parameters"));
    }
    let x = DMatrix::from_fn(n, p, |i, j| match (fit_intercept, j) {
        (true, 0) => 1.0,
        (true, j) => columns[j - 1][i],
        (false, j) => columns[j][i],
    });
    let qr = x.qr();
    let r = qr.r();
    let scale = r.diagonal().iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if r.diagonal().iter().any(|v| v.abs() <= scale * 1e-10) {
        return Err("the features are linearly dependent (singular design matrix)".into());
    }
    let qty = qr.q().transpose() * DVector::from_column_slice(y);
    let beta = r
        .solve_upper_triangular(&qty)
        .ok_or("the features are linearly dependent (singular design matrix)")?;
    if beta.iter().any(|b| !b.is_finite()) {
        return Err("the features are linearly dependent (singular design matrix)".into());
    }
    let (intercept, coefficients) = if fit_intercept {
        (beta[0], beta.iter().skip(1).copied().collect())
    } else {
        (0.0, beta.iter().copied().collect())
    };
    Ok(LinearFit {
        coefficients,
        intercept,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_an_exact_plane() {
        let x1: Vec<f64> = (0..20).map(|i| i as f64).collect();
        let x2: Vec<f64> = (0..20).map(|i| ((i * 7) % 5) as f64).collect();
        let y: Vec<f64> = x1
            .iter()
            .zip(&x2)
            .map(|(a, b)| 3.0 + 2.0 * a - 0.5 * b)
            .collect();
        let fit = fit(&[x1, x2], &y, true).unwrap();
        assert!((fit.intercept - 3.0).abs() < 1e-10);
        assert!((fit.coefficients[0] - 2.0).abs() < 1e-10);
        assert!((fit.coefficients[1] + 0.5).abs() < 1e-10);
    }

    #[test]
    fn refuses_collinear_features() {
        let x1: Vec<f64> = (0..10).map(|i| i as f64).collect();
        let x2 = x1.iter().map(|v| v * 2.0).collect();
        let y = x1.clone();
        assert!(fit(&[x1, x2], &y, true).is_err());
    }
}
