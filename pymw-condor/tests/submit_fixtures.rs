//! Rendered submit descriptions compared with the recorded, known-good ones.

mod common;

use pymw_condor::eventlog::EventLogFormat;
use pymw_condor::submit::{SubmitDescription, SubmitTask};

/// A submit file reduced to its `key = value` commands (keys lowercased) and
/// its queue statement.
struct Parsed {
    commands: Vec<(String, String)>,
    queue: String,
}

fn parse_submit(text: &str) -> Parsed {
    let mut commands = Vec::new();
    let mut queue = None;
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.to_ascii_lowercase().starts_with("queue") {
            assert!(queue.is_none(), "two queue statements");
            queue = Some(line.to_owned());
            if line.ends_with('(') {
                // Items until the closing parenthesis.
                assert!(
                    lines.by_ref().any(|l| l.trim() == ")"),
                    "unclosed item list"
                );
            }
            continue;
        }
        assert!(queue.is_none(), "command after the queue statement: {line}");
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not a command: {line}"));
        commands.push((key.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    Parsed {
        commands,
        queue: queue.expect("no queue statement"),
    }
}

impl Parsed {
    fn get(&self, key: &str) -> Option<&str> {
        self.commands
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A description shaped like the recorded jobs: 1 CPU, 64 MiB, 10 MiB.
fn like_the_recordings(format: EventLogFormat, batch: &str, tasks: usize) -> SubmitDescription {
    let mut d = SubmitDescription::new(
        "/home/tester/work/run/tinyjob",
        "/home/tester/work/run/events.log",
        batch,
    );
    d.event_log_format = format;
    d.request_cpus = Some(1);
    d.request_memory_mib = Some(64);
    d.request_disk_mib = Some(10);
    d.tasks = (0..tasks)
        .map(|i| SubmitTask {
            task_id: format!("task-{i}"),
            task_name: "tiny::square".into(),
            task_dir: format!("/home/tester/work/run/tasks/{i}").into(),
        })
        .collect();
    d
}

/// Commands whose value the recorded files and pymw must agree on.
const SAME_VALUE: &[&str] = &[
    "universe",
    "should_transfer_files",
    "when_to_transfer_output",
    "request_cpus",
    "request_memory",
    "request_disk",
    "+userlogusexml",
];

/// Commands of a recording that pymw deliberately does not write.
const NOT_USED: &[&str] = &[
    // pymw never sets it implicitly: the master owns retries.
    "max_retries",
];

fn check_against(recorded_path: &str, ours: &SubmitDescription) {
    let recorded = parse_submit(&common::read_text(recorded_path));
    let rendered = ours.render().unwrap();
    let mine = parse_submit(&rendered);
    let mut keys: Vec<&str> = mine.commands.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    let before = keys.len();
    keys.dedup();
    assert_eq!(
        before,
        keys.len(),
        "a command is written twice:\n{rendered}"
    );

    for (key, value) in &recorded.commands {
        if NOT_USED.contains(&key.as_str()) {
            assert!(mine.get(key).is_none());
            continue;
        }
        let Some(my_value) = mine.get(key) else {
            panic!("{recorded_path} uses `{key}`, the rendered description does not:\n{rendered}");
        };
        if SAME_VALUE.contains(&key.as_str()) {
            assert_eq!(my_value, value, "{recorded_path}: `{key}`");
        }
    }
    // Both queue statements have the same form.
    let from_list = |q: &str| q.ends_with("from (");
    if from_list(&recorded.queue) {
        assert!(from_list(&mine.queue), "{}", mine.queue);
    }
}

/// The JSON-run b-cluster5: one cluster, item data with `queue ... from (`,
/// `JobBatchName`, `submit_event_notes` and `+UserLogUseXML = 2`.
#[test]
fn like_the_json_b_cluster5() {
    let ours = like_the_recordings(EventLogFormat::Json, "fixture-batch-b", 5);
    check_against("eventlog/json/b-cluster5/b-cluster5.sub", &ours);
    let rendered = parse_submit(&ours.render().unwrap());
    assert_eq!(rendered.get("jobbatchname"), Some("fixture-batch-b"));
    assert_eq!(rendered.get("+userlogusexml"), Some("2"));
    assert_eq!(rendered.queue, "queue task_id,task_name,task_dir from (");
}

#[test]
fn like_the_text_b_cluster5() {
    let ours = like_the_recordings(EventLogFormat::Text, "fixture-batch-b", 5);
    check_against("eventlog/text/b-cluster5/b-cluster5.sub", &ours);
    assert!(
        parse_submit(&ours.render().unwrap())
            .get("+userlogusexml")
            .is_none()
    );
}

/// Every other recorded job description (the event log cases, `submit/`,
/// `query/` and `timing/`).
#[test]
fn like_every_recorded_tinyjob_description() {
    let mut checked = 0;
    let mut paths = vec![
        "submit/single.sub".to_owned(),
        "submit/cluster5.sub".to_owned(),
        "query/running.sub".to_owned(),
        "query/held.sub".to_owned(),
        "query/idle.sub".to_owned(),
        "submit/missing-executable.sub".to_owned(),
    ];
    for f in common::list("timing") {
        paths.push(format!("timing/{f}"));
    }
    for format in ["text", "json"] {
        for case in common::list(&format!("eventlog/{format}")) {
            paths.push(format!("eventlog/{format}/{case}/{case}.sub"));
        }
    }
    for path in &paths {
        let format = if path.starts_with("eventlog/json/") {
            EventLogFormat::Json
        } else {
            EventLogFormat::Text
        };
        let mut ours = like_the_recordings(format, "fixture", 1);
        // Policies of the recorded cases go through the pass-through commands.
        let recorded = parse_submit(&common::read_text(path));
        if path.ends_with("idle.sub") {
            // Asks for more CPUs than the pool has, to stay idle.
            ours.request_cpus = Some(64);
        }
        for key in [
            "periodic_remove",
            "periodic_hold",
            "periodic_hold_reason",
            "periodic_hold_subcode",
        ] {
            if let Some(value) = recorded.get(key) {
                ours.extra_commands.push((key.to_owned(), value.to_owned()));
            }
        }
        check_against(path, &ours);
        checked += 1;
    }
    assert_eq!(checked, 39);
}

/// What pymw writes that no recording had, each for a reason.
#[test]
fn pymw_additions() {
    let rendered = like_the_recordings(EventLogFormat::Text, "b", 2)
        .render()
        .unwrap();
    let mine = parse_submit(&rendered);
    assert_eq!(mine.get("initialdir"), Some("$(task_dir)"));
    assert_eq!(mine.get("+pymwtaskid"), Some("\"$(task_id)\""));
    assert_eq!(mine.get("submit_event_notes"), Some("$(task_id)"));
    assert_eq!(mine.get("transfer_executable"), Some("True"));
    assert_eq!(
        mine.get("arguments"),
        Some("\"__pymw worker --task $(task_name) --input input.bin --output output.bin\"")
    );
    assert!(mine.get("max_retries").is_none());
    // The item rows: id, name, dir.
    assert!(rendered.contains("\n  task-1, tiny::square, /home/tester/work/run/tasks/1\n)\n"));
}
