//! Evaluation metrics, as scikit-learn defines them.

/// Regression metrics: root mean squared error, mean absolute error, R².
pub fn regression(truth: &[f64], pred: &[f64]) -> [(&'static str, f64); 3] {
    let n = truth.len() as f64;
    let mean = truth.iter().sum::<f64>() / n;
    let sse: f64 = truth.iter().zip(pred).map(|(t, p)| (t - p).powi(2)).sum();
    let sst: f64 = truth.iter().map(|t| (t - mean).powi(2)).sum();
    let mae = truth
        .iter()
        .zip(pred)
        .map(|(t, p)| (t - p).abs())
        .sum::<f64>()
        / n;
    [
        ("rmse", (sse / n).sqrt()),
        ("mae", mae),
        ("r2", 1.0 - sse / sst),
    ]
}

/// Classification metrics over label indices in `0..classes`: accuracy, and precision,
/// recall and F1 — for `positive = Some(c)` those of class c alone, else macro-averaged.
/// A class with no predicted (or no true) members scores 0 precision (recall), as
/// scikit-learn's `zero_division=0`.
pub fn classification(
    truth: &[usize],
    pred: &[usize],
    classes: usize,
    positive: Option<usize>,
) -> [(&'static str, f64); 4] {
    let n = truth.len() as f64;
    let correct = truth.iter().zip(pred).filter(|(t, p)| t == p).count() as f64;
    let per_class = |c: usize| {
        let tp = truth
            .iter()
            .zip(pred)
            .filter(|(t, p)| **t == c && **p == c)
            .count() as f64;
        let predicted = pred.iter().filter(|p| **p == c).count() as f64;
        let actual = truth.iter().filter(|t| **t == c).count() as f64;
        let precision = if predicted > 0.0 { tp / predicted } else { 0.0 };
        let recall = if actual > 0.0 { tp / actual } else { 0.0 };
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        (precision, recall, f1)
    };
    let (precision, recall, f1) = match positive {
        Some(c) => per_class(c),
        None => {
            let all: Vec<_> = (0..classes).map(per_class).collect();
            let k = classes as f64;
            (
                all.iter().map(|m| m.0).sum::<f64>() / k,
                all.iter().map(|m| m.1).sum::<f64>() / k,
                all.iter().map(|m| m.2).sum::<f64>() / k,
            )
        }
    };
    [
        ("accuracy", correct / n),
        ("precision", precision),
        ("recall", recall),
        ("f1", f1),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_matches_hand_figures() {
        let m = regression(&[1.0, 2.0, 3.0], &[1.0, 2.0, 5.0]);
        assert!((m[0].1 - (4.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((m[1].1 - 2.0 / 3.0).abs() < 1e-12);
        assert!((m[2].1 - (1.0 - 4.0 / 2.0)).abs() < 1e-12);
    }

    #[test]
    fn classification_matches_hand_figures() {
        // truth 0 0 1 1, pred 0 1 1 1: class 1 precision 2/3, recall 1
        let m = classification(&[0, 0, 1, 1], &[0, 1, 1, 1], 2, Some(1));
        assert_eq!(m[0].1, 0.75);
        assert!((m[1].1 - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(m[2].1, 1.0);
        assert!((m[3].1 - 0.8).abs() < 1e-12);
        let macro_avg = classification(&[0, 0, 1, 1], &[0, 1, 1, 1], 2, None);
        assert!((macro_avg[1].1 - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
    }
}
