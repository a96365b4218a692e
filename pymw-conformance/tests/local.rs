//! The conformance suite against the local backend.
//!
//! `harness = false`: this binary is also its own worker, so `main` must call
//! `pymw::init()` before anything else. Filter cases by name with
//! `cargo test -p pymw-conformance --test local -- NAME`.

use pymw::local::{LocalBackend, LocalConfig};
use std::time::Duration;

fn main() {
    pymw::init();
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let shared_dir = std::env::temp_dir().join("pymw-conformance-local");
    std::fs::create_dir_all(&shared_dir).expect("create the shared directory");
    let harness = pymw_conformance::Harness {
        start: Box::new(|config| {
            pymw::blocking::Master::start_with(
                Box::new(LocalBackend::new(LocalConfig::default().workers(2))),
                config,
            )
            .expect("start a local master")
        }),
        shared_dir,
        scale: 1,
        case_timeout: Duration::from_secs(60),
    };
    std::process::exit(pymw_conformance::run(&harness, &filters));
}
