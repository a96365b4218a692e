//! Templates rendered byte for byte like `templates/project-templates/`.

mod common;

use common::text;
use pymw_boinc::templates::{InputFile, InputTemplate, OutputFile, OutputTemplate, WorkunitParams};

fn recorded(name: &str) -> String {
    text(&format!("templates/project-templates/{name}"))
}

fn inputs(names: &[&str], copy: bool) -> Vec<InputFile> {
    names
        .iter()
        .map(|n| InputFile {
            copy_file: copy,
            ..InputFile::new(*n)
        })
        .collect()
}

fn outputs(names: &[&str], copy: bool) -> OutputTemplate {
    OutputTemplate {
        files: names
            .iter()
            .map(|n| OutputFile {
                copy_file: copy,
                ..OutputFile::new(*n)
            })
            .collect(),
    }
}

#[test]
fn input_templates() {
    let probe = WorkunitParams::default();
    let cases = [
        ("probe_in", inputs(&["in"], false), probe.clone()),
        ("probe_copy_in", inputs(&["in"], true), probe.clone()),
        ("probe2_in", inputs(&["in", "in2"], false), probe.clone()),
        (
            "probe_once_in",
            inputs(&["in"], false),
            WorkunitParams {
                max_total_results: Some(1),
                ..probe.clone()
            },
        ),
        (
            "probe_q2_in",
            inputs(&["in"], false),
            WorkunitParams {
                target_nresults: 2,
                min_quorum: 2,
                max_error_results: Some(2),
                max_total_results: Some(4),
                max_success_results: Some(3),
                ..probe.clone()
            },
        ),
        (
            "rustworker_in",
            inputs(&["in"], false),
            WorkunitParams {
                max_error_results: None,
                max_total_results: None,
                max_success_results: None,
                ..probe
            },
        ),
    ];
    for (name, files, workunit) in cases {
        let rendered = InputTemplate { files, workunit }.render();
        assert_eq!(rendered, recorded(name), "{name}");
    }
}

#[test]
fn output_templates() {
    assert_eq!(outputs(&["out"], false).render(), recorded("probe_out"));
    assert_eq!(
        outputs(&["out"], false).render(),
        recorded("rustworker_out")
    );
    assert_eq!(outputs(&["out"], true).render(), recorded("probe_copy_out"));
    assert_eq!(
        outputs(&["out", "out2"], false).render(),
        recorded("probe2_out")
    );
}

#[test]
fn templates_served_by_get_templates_are_the_same() {
    // Exchange 02 returns the app's default templates (= probe_in/probe_out).
    let reply = text("remote-submit/exchanges/02-get_templates.response.xml");
    let input = InputTemplate {
        files: inputs(&["in"], false),
        workunit: WorkunitParams::default(),
    }
    .render();
    assert!(reply.contains(&input), "input template");
    assert!(
        reply.contains(&outputs(&["out"], false).render()),
        "output template"
    );
}
