//! The slot directory against `slot-direct/` and `slot-copy/`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{TempDir, copy_files, fixture, text};
use pymw_boinc::slot::{
    EntryKind, FINISH_CALLED_CONTENT, FINISH_CALLED_FILE, InitData, SlotDir, parse_soft_link,
};

/// Lays out `<tmp>/slots/0` (the recorded slot files) and
/// `<tmp>/projects/<project>/` with a placeholder for each link target the
/// recording says existed, so that `../../projects/...` resolves.
fn lay_out_slot(case: &str, tmp: &TempDir) -> (SlotDir, PathBuf) {
    let slot_dir = tmp.path().join("slots").join("0");
    copy_files(&fixture(&format!("{case}/slot-files")), &slot_dir);
    let init = InitData::parse(&text(&format!("{case}/slot-files/init_data.xml"))).unwrap();
    let project = tmp
        .path()
        .join("projects")
        .join(init.project_dir.file_name().unwrap());
    fs::create_dir_all(&project).unwrap();
    (SlotDir::new(slot_dir), project)
}

/// `NAME -> TARGET (exists=BOOL)` lines of `logical-names-resolved.txt`.
fn recorded_resolutions(case: &str) -> Vec<(String, String, bool)> {
    text(&format!("{case}/logical-names-resolved.txt"))
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once(" -> ")?;
            let (target, exists) = rest.rsplit_once(" (exists=")?;
            Some((
                name.to_owned(),
                target.to_owned(),
                exists.trim_end_matches(')') == "true",
            ))
        })
        .collect()
}

fn create_placeholder(path: &Path) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, b"placeholder\n").unwrap();
}

#[test]
fn slot_direct_soft_links_resolve_as_recorded() {
    let tmp = TempDir::new("slot-direct");
    let (slot, _project) = lay_out_slot("slot-direct", &tmp);
    let recorded = recorded_resolutions("slot-direct");
    assert_eq!(recorded.len(), 2, "in and out");
    for (_, target, existed) in &recorded {
        if *existed {
            create_placeholder(&slot.path().join(target));
        }
    }
    for (name, target, existed) in recorded {
        let r = slot.resolve(&name).unwrap();
        assert_eq!(r.kind, EntryKind::SoftLink, "{name}");
        assert_eq!(r.link_target.as_deref(), Some(target.as_str()), "{name}");
        assert_eq!(r.path, slot.path().join(&target));
        assert_eq!(r.path.exists(), existed, "{name}");
    }
    // An output link points to a file that does not exist yet; writing the
    // resolved path creates it in the project directory, the link stays.
    let out = slot.resolve("out").unwrap();
    fs::write(&out.path, "sum=6\n").unwrap();
    assert!(out.path.exists());
    assert!(
        parse_soft_link(&fs::read(slot.path().join("out")).unwrap()).is_some(),
        "the link file is left alone"
    );
}

#[test]
fn slot_direct_main_program_link_matches_argv0() {
    let tmp = TempDir::new("slot-main");
    let (slot, _) = lay_out_slot("slot-direct", &tmp);
    let init = slot.init_data().unwrap();
    let app_file = init.app_file.clone().unwrap();
    let r = slot.resolve(&app_file).unwrap();
    let argv0 = text("slot-direct/argv.txt")
        .lines()
        .find_map(|l| l.strip_prefix("argv[0]=").map(str::to_owned))
        .unwrap();
    assert_eq!(r.link_target.as_deref(), Some(argv0.as_str()));
}

#[test]
fn slot_direct_init_data() {
    let init = InitData::parse(&text("slot-direct/slot-files/init_data.xml")).unwrap();
    assert_eq!(init.client_version, (7, 20, 5));
    assert_eq!(init.app_version, 300);
    assert_eq!(init.app_name, "probe");
    assert_eq!(init.wu_name, "slot-direct_010304");
    assert_eq!(init.result_name, "slot-direct_010304_0");
    assert_eq!(
        init.project_dir,
        PathBuf::from("/var/lib/boinc-client/projects/127.0.0.1_pymw")
    );
    assert_eq!(init.boinc_dir, Some(PathBuf::from("/var/lib/boinc-client")));
    assert_eq!(init.slot, 0);
    assert_eq!(init.shm_key, Some(16826673));
    assert!(init.uses_sysv_shmem());
    assert_eq!((init.hostid, init.userid, init.teamid), (1, 1, 0));
    assert_eq!(init.checkpoint_period, 60.0);
    assert_eq!(
        (init.fraction_done_start, init.fraction_done_end),
        (0.0, 1.0)
    );
    assert_eq!(init.ncpus, 1.0);
    assert_eq!(init.rsc_fpops_est, 1e9);
    assert_eq!(init.rsc_fpops_bound, 1e13);
    assert_eq!(init.rsc_memory_bound, 1e8);
    assert_eq!(init.rsc_disk_bound, 1e8);
    assert_eq!(init.computation_deadline, 1795484925.0);
    assert_eq!(
        init.app_file.as_deref(),
        Some("probe_3.0_x86_64-pc-linux-gnu")
    );
    // The client's pid is the app's parent (process.txt).
    let ppid: u32 = text("slot-direct/process.txt")
        .lines()
        .find_map(|l| l.strip_prefix("ppid=")?.parse().ok())
        .unwrap();
    assert_eq!(init.client_pid, Some(ppid));
    // The slot number matches the recorded working directory.
    let cwd = text("slot-direct/process.txt");
    assert!(cwd.contains(&format!("cwd=/var/lib/boinc-client/slots/{}\n", init.slot)));
}

#[test]
fn slot_copy_plain_input_and_absent_output() {
    let tmp = TempDir::new("slot-copy");
    let (slot, _) = lay_out_slot("slot-copy", &tmp);
    let recorded = recorded_resolutions("slot-copy");
    assert_eq!(recorded.len(), 2);
    for (name, target, existed) in recorded {
        let r = slot.resolve(&name).unwrap();
        assert_eq!(r.path, slot.path().join(&target), "{name}");
        assert_eq!(r.link_target, None);
        assert_eq!(r.path.exists(), existed);
        let expected = if existed {
            EntryKind::Plain
        } else {
            EntryKind::Absent
        };
        assert_eq!(r.kind, expected, "{name}");
    }
    let input = fs::read(slot.resolve("in").unwrap().path).unwrap();
    assert_eq!(input, b"1 2 3 slot test\n");
    let init = slot.init_data().unwrap();
    assert_eq!(init.wu_name, "slot-copy_010326");
    assert_eq!(init.result_name, "slot-copy_010326_0");
}

#[test]
fn finish_file_as_recorded() {
    // README: the probe "writes the file boinc_finish_called containing 0\n".
    let readme = text("README.md");
    assert!(readme.contains("`boinc_finish_called` containing `0\\n`"));
    let tmp = TempDir::new("finish");
    SlotDir::new(tmp.path()).write_finish_called().unwrap();
    let written = fs::read(tmp.path().join(FINISH_CALLED_FILE)).unwrap();
    assert_eq!(written, FINISH_CALLED_CONTENT);
    assert_eq!(written, b"0\n");
}
