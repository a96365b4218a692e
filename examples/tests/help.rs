//! Every example's `--help` is its own: the flattened `pymw::Args` adds its
//! options but not its rustdoc (which holds a code fence) as the program's
//! description.

use std::process::Command;

fn long_help(bin: &str) -> String {
    let output = Command::new(bin).arg("--help").output().unwrap();
    assert!(output.status.success(), "{bin} --help failed");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn examples_describe_themselves() {
    for (bin, own) in [
        (env!("CARGO_BIN_EXE_monte_pi"), "Estimate pi"),
        (
            env!("CARGO_BIN_EXE_genetic_algorithm"),
            "Evolve bit strings",
        ),
        (
            env!("CARGO_BIN_EXE_null_test"),
            "Measure the per-task overhead",
        ),
        (env!("CARGO_BIN_EXE_prime_finder"), "Count primes"),
        (env!("CARGO_BIN_EXE_string_counter"), "Count words"),
    ] {
        let help = long_help(bin);
        assert!(help.starts_with(own), "{bin}:\n{help}");
        assert!(!help.contains("```"), "{bin}:\n{help}");
        assert!(!help.contains("Flatten it into"), "{bin}:\n{help}");
        assert!(help.contains("--backend"), "{bin}:\n{help}");
    }
}
