//! Shared memory: what the recordings say about it, and the memory-mapped
//! variant over a real temporary file.

mod common;

use common::{TempDir, text};
use pymw_boinc::shmem::{
    AppStatus, Channel, ControlRequest, Heartbeat, MMAPPED_FILE_NAME, SHARED_MEM_SIZE, SharedMem,
};
use pymw_boinc::slot::{InitData, SlotDir};

#[test]
fn recorded_non_api_slots_use_sysv_not_the_mmap_file() {
    for case in ["slot-direct", "slot-copy"] {
        let init = InitData::parse(&text(&format!("{case}/slot-files/init_data.xml"))).unwrap();
        assert!(init.uses_sysv_shmem(), "{case}: shm_key {:?}", init.shm_key);
        for listing in [
            "slot-listing-at-start.tsv",
            "slot-listing-after-writing-outputs.tsv",
            "slot-listing-from-outside.txt",
        ] {
            let l = text(&format!("{case}/{listing}"));
            assert!(!l.contains(MMAPPED_FILE_NAME), "{case}/{listing}");
        }
    }
}

fn init_with_key(key: i64) -> InitData {
    let xml = text("slot-direct/slot-files/init_data.xml").replace(
        "<shm_key>16826673</shm_key>",
        &format!("<shm_key>{key}</shm_key>"),
    );
    InitData::parse(&xml).unwrap()
}

#[test]
fn mmap_file_between_client_and_app() {
    let tmp = TempDir::new("shmem");
    let slot = SlotDir::new(tmp.path());
    let init = init_with_key(-1);
    assert!(!init.uses_sysv_shmem());
    assert!(
        SharedMem::for_slot(&slot, &init).unwrap().is_none(),
        "no file yet"
    );

    let client = SharedMem::create_file(&tmp.path().join(MMAPPED_FILE_NAME)).unwrap();
    let app = SharedMem::for_slot(&slot, &init).unwrap().expect("mapped");

    // Client to app.
    let mut req = client.channel(Channel::ProcessControlRequest);
    assert!(req.send_msg(ControlRequest::Quit.as_xml()).unwrap());
    assert!(
        !req.send_msg("<suspend/>").unwrap(),
        "unread message blocks"
    );
    assert_eq!(app.poll_control(), vec![ControlRequest::Quit]);
    assert!(app.poll_control().is_empty());
    let hb = Heartbeat {
        heartbeat: true,
        wss: Some(1e6),
        max_wss: Some(4e9),
        network_suspended: false,
    };
    assert!(
        client
            .channel(Channel::Heartbeat)
            .send_msg(&hb.encode())
            .unwrap()
    );
    assert_eq!(app.poll_heartbeat(), Some(hb));

    // App to client.
    let status = AppStatus {
        current_cpu_time: 3.0,
        checkpoint_cpu_time: 2.0,
        fraction_done: Some(AppStatus::scale_fraction(0.5, &init)),
        ..AppStatus::default()
    };
    assert!(app.send_status(&status).unwrap());
    let got = client.channel(Channel::AppStatus).get_msg().unwrap();
    assert_eq!(AppStatus::decode(&got), status);
    assert!(got.contains("<fraction_done>5.000000e-01</fraction_done>\n"));

    // Both views see the same bytes, and the file holds them.
    assert_eq!(client.snapshot(), app.snapshot());
    drop((client, app));
    let file = std::fs::read(tmp.path().join(MMAPPED_FILE_NAME)).unwrap();
    assert_eq!(file.len(), SHARED_MEM_SIZE);
    let status_channel = &file[Channel::AppStatus.offset()..];
    assert_eq!(status_channel[0], 0, "read by the client");
    assert!(status_channel[1..].starts_with(b"<current_cpu_time>3.000000e+00"));
}

#[test]
fn short_mmap_file_is_refused() {
    let tmp = TempDir::new("shmem-short");
    let path = tmp.path().join(MMAPPED_FILE_NAME);
    std::fs::write(&path, [0u8; 100]).unwrap();
    assert!(SharedMem::map_file(&path).is_err());
}

#[test]
fn fraction_done_is_scaled_to_the_programs_share() {
    let mut init = init_with_key(-1);
    init.fraction_done_start = 0.5;
    init.fraction_done_end = 1.0;
    assert_eq!(AppStatus::scale_fraction(0.5, &init), 0.75);
    assert_eq!(AppStatus::scale_fraction(7.0, &init), 1.0);
    assert_eq!(AppStatus::scale_fraction(f64::NAN, &init), 0.5);
}
