//! Writes the synthetic runs of the `fixture` feature into a runs directory,
//! to try `pymw` on:
//!
//! ```sh
//! cargo run -p pymw-store --example fixture -- /tmp/runs
//! cargo run -p pymw-cli -- --root /tmp/runs status grid
//! ```

use pymw_store::fixture::{Fixture, synthetic_run};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::args().nth(1).ok_or("usage: fixture DIR")?;
    let root = std::path::Path::new(&root);
    synthetic_run(root, "grid", &Fixture::default())?;
    synthetic_run(
        root,
        "killed",
        &Fixture {
            interrupt_at: Some(0.6),
            seed: 7,
            ..Fixture::default()
        },
    )?;
    synthetic_run(
        root,
        "tiny",
        &Fixture {
            tasks: 200_000,
            tiny: true,
            hosts: 1,
            slots: 2,
            ..Fixture::default()
        },
    )?;
    synthetic_run(
        root,
        "volunteers",
        &Fixture {
            tasks: 3000,
            hosts: 150,
            slots: 1,
            seed: 11,
            ..Fixture::default()
        },
    )?;
    println!(
        "wrote runs grid, killed, tiny and volunteers to {}",
        root.display()
    );
    Ok(())
}
