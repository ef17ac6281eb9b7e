//! The artifact a trainer writes and a runner loads: JSON, versioned by `format`.

use serde::{Deserialize, Serialize};

/// The artifact's format tag; a runner refuses any other.
pub const FORMAT: &str = "kiln-linear-model/1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Ordinary least squares: one output, `intercepts[0] + coefficients[0] · x`.
    Linear,
    /// Logistic regression: one row of coefficients per class (one row when binary).
    Logistic,
}

/// A trained linear or logistic model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelArtifact {
    pub format: String,
    pub kind: ModelKind,
    /// Feature names, in the order of each coefficient row.
    pub features: Vec<String>,
    /// The column the model predicts.
    pub target: String,
    /// One row per output (linear: 1; binary logistic: 1; multinomial: one per class).
    pub coefficients: Vec<Vec<f64>>,
    pub intercepts: Vec<f64>,
    /// Class labels (logistic only). Binary: `[negative, positive]`.
    #[serde(default)]
    pub classes: Vec<String>,
}

impl ModelArtifact {
    /// Parses and checks an artifact.
    pub fn from_json(bytes: &[u8]) -> Result<ModelArtifact, String> {
        let m: ModelArtifact =
            serde_json::from_slice(bytes).map_err(|e| format!("not a model artifact: {e}"))?;
        if m.format != FORMAT {
            return Err(format!(
                "unsupported model format `{}` (expected `{FORMAT}`)",
                m.format
            ));
        }
        if m.coefficients.is_empty() || m.coefficients.len() != m.intercepts.len() {
            return Err("coefficient rows and intercepts disagree".into());
        }
        if m.coefficients
            .iter()
            .any(|row| row.len() != m.features.len())
        {
            return Err("a coefficient row does not match the feature list".into());
        }
        match m.kind {
            ModelKind::Linear if m.coefficients.len() != 1 => {
                Err("a linear model has one coefficient row".into())
            }
            ModelKind::Logistic if m.classes.len() < 2 => {
                Err("a logistic model needs at least two classes".into())
            }
            ModelKind::Logistic if m.classes.len() == 2 && m.coefficients.len() != 1 => {
                Err("a binary logistic model has one coefficient row".into())
            }
            ModelKind::Logistic
                if m.classes.len() > 2 && m.coefficients.len() != m.classes.len() =>
            {
                Err("a multinomial model has one coefficient row per class".into())
            }
            _ => Ok(m),
        }
    }

    /// The artifact as JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Raw scores, one vector per output row, for rows given column-major.
    fn scores(&self, columns: &[Vec<f64>], rows: usize) -> Vec<Vec<f64>> {
        self.coefficients
            .iter()
            .zip(&self.intercepts)
            .map(|(coef, b)| {
                let mut s = vec![*b; rows];
                for (w, col) in coef.iter().zip(columns) {
                    for (si, x) in s.iter_mut().zip(col) {
                        *si += w * x;
                    }
                }
                s
            })
            .collect()
    }

    /// Linear: the predictions.
    pub fn predict_values(&self, columns: &[Vec<f64>], rows: usize) -> Vec<f64> {
        self.scores(columns, rows).swap_remove(0)
    }

    /// Logistic: per-row class probabilities (`probs[k][i]`) and the most likely label index.
    pub fn predict_proba(&self, columns: &[Vec<f64>], rows: usize) -> (Vec<Vec<f64>>, Vec<usize>) {
        let scores = self.scores(columns, rows);
        let probs = if self.classes.len() == 2 {
            let p1: Vec<f64> = scores[0]
                .iter()
                .map(|&z| crate::logistic::sigmoid(z))
                .collect();
            vec![p1.iter().map(|p| 1.0 - p).collect(), p1]
        } else {
            let mut probs = vec![vec![0.0; rows]; scores.len()];
            for i in 0..rows {
                let max = scores
                    .iter()
                    .map(|s| s[i])
                    .fold(f64::NEG_INFINITY, f64::max);
                let total: f64 = scores.iter().map(|s| (s[i] - max).exp()).sum();
                for (k, s) in scores.iter().enumerate() {
                    probs[k][i] = (s[i] - max).exp() / total;
                }
            }
            probs
        };
        let labels = (0..rows)
            .map(|i| {
                (0..probs.len())
                    .max_by(|&a, &b| probs[a][i].total_cmp(&probs[b][i]))
                    .unwrap_or(0)
            })
            .collect();
        (probs, labels)
    }
}
