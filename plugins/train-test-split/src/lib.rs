//! Splits a table's rows into train and test sets: shuffled by a seeded ChaCha8 generator
//! (the same seed gives the same split on every machine), optionally stratified so each
//! class keeps its share in both sets.

use kiln_sdk::{Config, Descriptor, Error, Inputs, Outputs, Step, ValueKind};
use rand::{SeedableRng, seq::SliceRandom};
use rand_chacha::ChaCha8Rng;

struct TrainTestSplit;

impl Step for TrainTestSplit {
    fn describe() -> Descriptor {
        Descriptor::new("train-test-split", "Splits rows into train and test sets")
            .input("table", ValueKind::Table, "the table")
            .output("train", ValueKind::Table, "the training rows")
            .output("test", ValueKind::Table, "the test rows")
            .config(
                "test_fraction",
                Some("0.25"),
                "the share of rows for testing, in (0, 1)",
            )
            .config("seed", Some("0"), "the shuffle seed")
            .config(
                "stratify",
                None,
                "a column whose classes keep their share in both sets",
            )
            .config("shuffle", Some("true"), "shuffle before splitting")
    }

    fn run(mut inputs: Inputs, config: Config) -> Result<Outputs, Error> {
        let table = inputs.table("table")?;
        table.check()?;
        let fraction: f64 = config.parse_or("test_fraction", 0.25)?;
        if !(fraction > 0.0 && fraction < 1.0) {
            return Err(Error::invalid_config(
                "`test_fraction` must be between 0 and 1",
            ));
        }
        let seed: u64 = config.parse_or("seed", 0)?;
        let shuffle: bool = config.parse_or("shuffle", true)?;
        let rows = table.num_rows();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let groups: Vec<Vec<usize>> = match config.get("stratify") {
            Some(col) => {
                let (codes, classes) = table.column(col)?.categories()?;
                (0..classes.len())
                    .map(|c| (0..rows).filter(|&i| codes[i] == c).collect())
                    .collect()
            }
            None => vec![(0..rows).collect()],
        };
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for mut group in groups {
            if shuffle {
                group.shuffle(&mut rng);
            }
            let n_test = ((group.len() as f64) * fraction).round() as usize;
            test.extend_from_slice(&group[..n_test]);
            train.extend_from_slice(&group[n_test..]);
        }
        if train.is_empty() || test.is_empty() {
            return Err(Error::invalid_input(format!(
                "{rows} rows cannot be split {:.0}/{:.0}",
                (1.0 - fraction) * 100.0,
                fraction * 100.0
            )));
        }
        if !shuffle {
            train.sort_unstable();
            test.sort_unstable();
        }
        kiln_sdk::tracking::log_param("split.seed", &seed.to_string());
        kiln_sdk::log::info(&format!(
            "{} train rows, {} test rows",
            train.len(),
            test.len()
        ));
        Ok(Outputs::new()
            .with("train", table.take_rows(&train))
            .with("test", table.take_rows(&test)))
    }
}

kiln_sdk::export_step!(TrainTestSplit);
