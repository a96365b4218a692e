//! App versions against `app-versions/`.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;

use common::{TempDir, text};
use pymw_boinc::app_version::{
    PLATFORM_X86_64_LINUX, UpdateVersionsReport, VersionFile, VersionNumber, VersionOutcome,
    VersionPlan, VersionXml, content_hash, install_file, physical_name, plan_version, version_dir,
    wrapper_job_xml, write_version_xml,
};

const WRAP: &str = "app-versions/wrapper-variant/apps-rustwrap-1.0-x86_64-pc-linux-gnu";

#[test]
fn wrapper_version_xml_and_job_file() {
    let v = VersionNumber::parse("1.0").unwrap();
    let file = |stem: &str, logical: Option<&str>, main: bool| VersionFile {
        physical_name: physical_name(stem, v, "530887c17158", PLATFORM_X86_64_LINUX),
        logical_name: logical.map(str::to_owned),
        main_program: main,
        gzip: false,
    };
    let mut wrapper = file("wrapper", None, true);
    // The wrapper's own version, 7.20.5, is in its name instead of 1.0.
    wrapper.physical_name = "wrapper_7.20.5_530887c17158_x86_64-pc-linux-gnu".into();
    let xml = VersionXml {
        files: vec![
            wrapper,
            file("rustworker_w", Some("worker"), false),
            VersionFile {
                physical_name: "job_1.0_530887c17158.xml".into(),
                logical_name: Some("job.xml".into()),
                main_program: false,
                gzip: false,
            },
        ],
        is_wrapper: true,
        api_version: None,
    };
    assert_eq!(xml.render(), text(&format!("{WRAP}/version.xml")));
    assert_eq!(
        wrapper_job_xml("worker", Some("--no-finish")),
        text(&format!("{WRAP}/job_1.0_530887c17158.xml"))
    );
}

/// Rebuilds the recorded `apps/` tree (directories and empty files).
fn recorded_tree(tmp: &TempDir) {
    for line in text("app-versions/project-apps-tree.txt").lines() {
        let mut parts = line.splitn(4, ' ');
        let (Some(kind), Some(_mode), Some(_size), Some(path)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let p = tmp.path().join(path);
        match kind {
            "d" => fs::create_dir_all(&p).unwrap(),
            "f" => fs::write(&p, b"").unwrap(),
            _ => {}
        }
    }
}

#[test]
fn versions_in_the_recorded_tree() {
    let tmp = TempDir::new("apps");
    recorded_tree(&tmp);
    let p = tmp.path();
    let probe =
        pymw_boinc::app_version::existing_versions(p, "probe", PLATFORM_X86_64_LINUX).unwrap();
    let names: Vec<String> = probe.iter().map(ToString::to_string).collect();
    assert_eq!(names, ["1.0", "2.0", "3.0", "4.0", "5.0"]);
    // The highest version is the one the client ran (version_num 500).
    let rows = text("app-versions/db-app_version-rows.txt");
    assert!(rows.contains(&format!("version_num: {}", probe[4].version_num())));
    assert!(
        text("app-versions/client_state-app-file-app_version-elements.xml")
            .contains("<version_num>500</version_num>")
    );

    // The lab's rustworker binary is already deployed as 1.0 ...
    assert_eq!(
        plan_version(
            p,
            "rustworker",
            PLATFORM_X86_64_LINUX,
            "rustworker",
            "530887c17158"
        )
        .unwrap(),
        VersionPlan::Existing(VersionNumber::new(1, 0).unwrap())
    );
    // ... new content gets the next major version ...
    let hash = content_hash(b"new build");
    assert_eq!(
        plan_version(p, "rustworker", PLATFORM_X86_64_LINUX, "rustworker", &hash).unwrap(),
        VersionPlan::New(VersionNumber::new(2, 0).unwrap())
    );
    assert_eq!(
        plan_version(p, "probe", PLATFORM_X86_64_LINUX, "probe", &hash).unwrap(),
        VersionPlan::New(VersionNumber::new(6, 0).unwrap())
    );
    // ... and a new app starts at 1.0.
    assert_eq!(
        plan_version(p, "newapp", PLATFORM_X86_64_LINUX, "newapp", &hash).unwrap(),
        VersionPlan::New(VersionNumber::new(1, 0).unwrap())
    );
}

#[test]
fn install_into_a_version_directory() {
    let tmp = TempDir::new("install");
    let src = tmp.path().join("build-output");
    fs::write(&src, b"\x7fELF fake binary").unwrap();
    let v = VersionNumber::new(1, 0).unwrap();
    let hash = content_hash(&fs::read(&src).unwrap());
    let name = physical_name("pymwapp", v, &hash, PLATFORM_X86_64_LINUX);
    let dir = version_dir(tmp.path(), "pymwapp", v, PLATFORM_X86_64_LINUX);
    assert!(dir.ends_with("apps/pymwapp/1.0/x86_64-pc-linux-gnu"));
    let installed = install_file(&dir, &src, &name, true).unwrap();
    assert_eq!(fs::read(&installed).unwrap(), b"\x7fELF fake binary");
    assert_eq!(
        fs::metadata(&installed).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert_eq!(
        install_file(&dir, &src, &name, true).unwrap(),
        installed,
        "idempotent"
    );
    let xml = VersionXml {
        files: vec![VersionFile {
            physical_name: name.clone(),
            logical_name: None,
            main_program: true,
            gzip: false,
        }],
        ..VersionXml::default()
    };
    write_version_xml(&dir, &xml).unwrap();
    assert_eq!(
        fs::read_to_string(dir.join("version.xml")).unwrap(),
        format!(
            "<version>\n    <file><physical_name>{name}</physical_name><main_program/></file>\n</version>\n"
        )
    );
    assert_eq!(
        plan_version(
            tmp.path(),
            "pymwapp",
            PLATFORM_X86_64_LINUX,
            "pymwapp",
            &hash
        )
        .unwrap(),
        VersionPlan::Existing(v)
    );
    assert!(install_file(&dir, &src, "../escape", true).is_err());
}

#[test]
fn update_versions_outputs() {
    let first = UpdateVersionsReport::parse(&text(
        "app-versions/update_versions-output-first-version-of-two-apps.txt",
    ));
    assert!(first.signing_notice);
    assert_eq!(first.versions.len(), 5);
    let p = PLATFORM_X86_64_LINUX;
    assert_eq!(
        first.outcome("probe", "1.0", p),
        Some(&VersionOutcome::Added { id: 4 })
    );
    assert_eq!(
        first.outcome("probescript", "1.0", p),
        Some(&VersionOutcome::Added { id: 5 })
    );
    for app in ["rustworker", "rustwrap", "rustbatch"] {
        assert_eq!(
            first.outcome(app, "1.0", p),
            Some(&VersionOutcome::AlreadyExists),
            "{app}"
        );
    }

    let five = UpdateVersionsReport::parse(&text(
        "app-versions/update_versions-output-new-version-5.0.txt",
    ));
    assert!(five.signing_notice);
    assert_eq!(
        five.outcome("probe", "5.0", p),
        Some(&VersionOutcome::Added { id: 12 })
    );
    assert_eq!(
        five.outcome("probescript", "5.0", p),
        Some(&VersionOutcome::Added { id: 13 })
    );
    let added = five
        .versions
        .iter()
        .filter(|v| matches!(v.outcome, VersionOutcome::Added { .. }))
        .count();
    assert_eq!(added, 2);
    assert!(five.versions.iter().all(|v| v.plan_class.is_none()));

    let none =
        UpdateVersionsReport::parse(&text("app-versions/update_versions-output-nothing-new.txt"));
    assert!(!none.signing_notice);
    assert_eq!(none.versions.len(), 3);
    assert!(
        none.versions
            .iter()
            .all(|v| v.outcome == VersionOutcome::AlreadyExists)
    );

    let odd = UpdateVersionsReport::parse(
        "Found app version directory for: a 1.0 x86_64-pc-linux-gnu\n    Do you want to add this app version (y/n)? \n",
    );
    assert!(matches!(
        odd.versions[0].outcome,
        VersionOutcome::Unknown(_)
    ));
}
