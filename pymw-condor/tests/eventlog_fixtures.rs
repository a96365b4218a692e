//! The event log reader against every recorded log in `eventlog/`.

mod common;

use pymw_condor::eventlog::{
    EventLogError, EventLogFollower, EventLogFormat, EventLogReader, EventTime, FileTransferStage,
    JobEvent, JobEventKind, JobExit,
};

fn opt<T: std::fmt::Display>(label: &str, value: &Option<T>) -> String {
    match value {
        Some(v) => format!(" {label}={v}"),
        None => String::new(),
    }
}

fn exit(e: &JobExit) -> String {
    match e {
        JobExit::Normal { exit_code } => format!("exit {exit_code}"),
        JobExit::Signal { signal } => format!("signal {signal}"),
    }
}

/// One line per event with every field but the hosts (checked separately).
fn summary(e: &JobEvent) -> String {
    use JobEventKind as K;
    let detail = match &e.kind {
        K::Submitted { notes } => format!("submitted{}", opt("notes", notes)),
        K::Executing { slot_name, .. } => format!("executing{}", opt("slot", slot_name)),
        K::Evicted { reason } => format!("evicted{}", opt("reason", reason)),
        K::Requeued { exit: x, reason } => format!(
            "requeued{}{}",
            opt("after", &x.as_ref().map(exit)),
            opt("reason", reason)
        ),
        K::Terminated {
            exit: x,
            bytes_sent,
            bytes_received,
        } => format!(
            "terminated {}{}{}",
            exit(x),
            opt("sent", bytes_sent),
            opt("received", bytes_received)
        ),
        K::ImageSize {
            image_size_kb,
            memory_usage_mb,
            resident_set_size_kb,
        } => format!(
            "image {image_size_kb}{}{}",
            opt("mem", memory_usage_mb),
            opt("rss", resident_set_size_kb)
        ),
        K::Aborted { reason } => format!("aborted{}", opt("reason", reason)),
        K::Held {
            reason,
            code,
            subcode,
        } => {
            format!(
                "held{}{} reason={reason}",
                opt("code", code),
                opt("subcode", subcode)
            )
        }
        K::Released { reason } => format!("released{}", opt("reason", reason)),
        K::RemoteError {
            daemon,
            host,
            message,
            code,
            subcode,
        } => format!(
            "remote-error {daemon} on {host}{}{} message={message}",
            opt("code", code),
            opt("subcode", subcode)
        ),
        K::FileTransfer { stage, host } => {
            format!(
                "transfer {stage:?}{}",
                if host.is_some() { " +host" } else { "" }
            )
        }
        K::Other { code } => format!("other {code}"),
        other => format!("unexpected {other:?}"),
    };
    format!(
        "{}.{} {} {:03} {detail}",
        e.cluster,
        e.proc,
        e.time,
        e.kind.code()
    )
}

fn read_all(bytes: &[u8], format: Option<EventLogFormat>) -> Vec<JobEvent> {
    let mut reader = match format {
        Some(f) => EventLogReader::new(f),
        None => EventLogReader::detecting(),
    };
    let mut events = reader.feed(bytes).expect("feed");
    events.extend(reader.finish().expect("finish"));
    events
}

/// The execute host every `001` of the recording pool names.
const STARTD: &str =
    "<127.0.0.1:38993?addrs=127.0.0.1-38993&alias=condorhost&noUDP&sock=startd_14601_f6cf>";

/// Every recorded log with its exact event sequence (see `summary`).
/// Reviewed by hand against the logs and the fixture README's event table.
const EXPECTED: &[(&str, &[&str])] = &[
    (
        "eventlog/text/a-exit0/a-exit0.log",
        &[
            "13.0 2026-11-24T01:00:19 000 submitted",
            "13.0 2026-11-24T01:00:19 040 transfer InputStarted +host",
            "13.0 2026-11-24T01:00:19 040 transfer InputFinished",
            "13.0 2026-11-24T01:00:19 001 executing slot=slot1_1@condorhost",
            "13.0 2026-11-24T01:00:19 006 image 475 mem=5 rss=4452",
            "13.0 2026-11-24T01:00:19 040 transfer OutputStarted",
            "13.0 2026-11-24T01:00:19 040 transfer OutputFinished",
            "13.0 2026-11-24T01:00:19 005 terminated exit 0 sent=74 received=471378",
        ],
    ),
    (
        "eventlog/text/b-cluster5/b-cluster5.log",
        &[
            "14.0 2026-11-24T01:00:20 000 submitted notes=item 0 args [in_0.txt out_0.txt ok]",
            "14.1 2026-11-24T01:00:20 000 submitted notes=item 1 args [in_1.txt out_1.txt sleep:2]",
            "14.2 2026-11-24T01:00:20 000 submitted notes=item 2 args [in_2.txt out_2.txt ok]",
            "14.3 2026-11-24T01:00:20 000 submitted notes=item 3 args [in_3.txt out_3.txt sleep:1]",
            "14.4 2026-11-24T01:00:20 000 submitted notes=item 4 args [in_4.txt out_4.txt ok]",
            "14.0 2026-11-24T01:00:21 040 transfer InputStarted +host",
            "14.0 2026-11-24T01:00:21 040 transfer InputFinished",
            "14.0 2026-11-24T01:00:21 001 executing slot=slot1_1@condorhost",
            "14.1 2026-11-24T01:00:21 040 transfer InputStarted +host",
            "14.0 2026-11-24T01:00:21 006 image 475 mem=5 rss=4452",
            "14.1 2026-11-24T01:00:21 001 executing slot=slot1_2@condorhost",
            "14.1 2026-11-24T01:00:21 040 transfer InputFinished",
            "14.2 2026-11-24T01:00:21 040 transfer InputStarted +host",
            "14.0 2026-11-24T01:00:21 040 transfer OutputStarted",
            "14.3 2026-11-24T01:00:21 040 transfer InputStarted +host",
            "14.2 2026-11-24T01:00:21 001 executing slot=slot1_3@condorhost",
            "14.2 2026-11-24T01:00:21 040 transfer InputFinished",
            "14.3 2026-11-24T01:00:21 001 executing slot=slot1_4@condorhost",
            "14.0 2026-11-24T01:00:21 040 transfer OutputFinished",
            "14.3 2026-11-24T01:00:21 040 transfer InputFinished",
            "14.2 2026-11-24T01:00:21 006 image 475 mem=0 rss=0",
            "14.0 2026-11-24T01:00:21 005 terminated exit 0 sent=78 received=471379",
            "14.2 2026-11-24T01:00:21 040 transfer OutputStarted",
            "14.2 2026-11-24T01:00:21 040 transfer OutputFinished",
            "14.4 2026-11-24T01:00:21 040 transfer InputStarted +host",
            "14.2 2026-11-24T01:00:21 005 terminated exit 0 sent=78 received=471379",
            "14.4 2026-11-24T01:00:21 001 executing slot=slot1_5@condorhost",
            "14.4 2026-11-24T01:00:21 040 transfer InputFinished",
            "14.4 2026-11-24T01:00:21 006 image 475 mem=5 rss=4456",
            "14.4 2026-11-24T01:00:21 040 transfer OutputStarted",
            "14.4 2026-11-24T01:00:21 040 transfer OutputFinished",
            "14.4 2026-11-24T01:00:21 005 terminated exit 0 sent=78 received=471379",
            "14.3 2026-11-24T01:00:22 006 image 3092 mem=2 rss=1876",
            "14.3 2026-11-24T01:00:22 040 transfer OutputStarted",
            "14.3 2026-11-24T01:00:22 040 transfer OutputFinished",
            "14.3 2026-11-24T01:00:22 005 terminated exit 0 sent=83 received=471379",
            "14.1 2026-11-24T01:00:23 006 image 3092 mem=2 rss=1916",
            "14.1 2026-11-24T01:00:23 040 transfer OutputStarted",
            "14.1 2026-11-24T01:00:23 040 transfer OutputFinished",
            "14.1 2026-11-24T01:00:23 005 terminated exit 0 sent=83 received=471379",
        ],
    ),
    (
        "eventlog/text/c-exit3/c-exit3.log",
        &[
            "15.0 2026-11-24T01:00:23 000 submitted",
            "15.0 2026-11-24T01:00:24 040 transfer InputStarted +host",
            "15.0 2026-11-24T01:00:24 040 transfer InputFinished",
            "15.0 2026-11-24T01:00:24 001 executing slot=slot1_1@condorhost",
            "15.0 2026-11-24T01:00:24 006 image 475 mem=5 rss=4452",
            "15.0 2026-11-24T01:00:24 040 transfer OutputStarted",
            "15.0 2026-11-24T01:00:24 040 transfer OutputFinished",
            "15.0 2026-11-24T01:00:24 005 terminated exit 3 sent=78 received=471378",
        ],
    ),
    (
        "eventlog/text/d-sigabrt/d-sigabrt.log",
        &[
            "17.0 2026-11-24T01:00:26 000 submitted",
            "17.0 2026-11-24T01:00:27 040 transfer InputStarted +host",
            "17.0 2026-11-24T01:00:27 040 transfer InputFinished",
            "17.0 2026-11-24T01:00:27 001 executing slot=slot1_1@condorhost",
            "17.0 2026-11-24T01:00:27 006 image 475 mem=5 rss=4472",
            "17.0 2026-11-24T01:00:27 040 transfer OutputStarted",
            "17.0 2026-11-24T01:00:27 040 transfer OutputFinished",
            "17.0 2026-11-24T01:00:27 005 terminated signal 6 sent=77 received=471378",
        ],
    ),
    (
        "eventlog/text/d-sigsegv/d-sigsegv.log",
        &[
            "16.0 2026-11-24T01:00:24 000 submitted",
            "16.0 2026-11-24T01:00:25 040 transfer InputStarted +host",
            "16.0 2026-11-24T01:00:25 040 transfer InputFinished",
            "16.0 2026-11-24T01:00:25 001 executing slot=slot1_1@condorhost",
            "16.0 2026-11-24T01:00:25 006 image 475 mem=5 rss=4580",
            "16.0 2026-11-24T01:00:25 040 transfer OutputStarted",
            "16.0 2026-11-24T01:00:25 040 transfer OutputFinished",
            "16.0 2026-11-24T01:00:25 005 terminated signal 11 sent=77 received=471378",
        ],
    ),
    (
        "eventlog/text/e-hold-release/e-hold-release.log",
        &[
            "18.0 2026-11-24T01:00:27 000 submitted",
            "18.0 2026-11-24T01:00:30 040 transfer InputStarted +host",
            "18.0 2026-11-24T01:00:30 040 transfer InputFinished",
            "18.0 2026-11-24T01:00:30 021 remote-error starter on slot1_1@condorhost code=13 subcode=2 message=Failed to transfer files: SHADOW at 127.0.0.1 failed to send file(s) to <127.0.0.1:45877>: |Error: reading from file /home/tester/work/ev-text/e-hold-release/needed.txt: (errno 2) No such file or directory; STARTER failed to receive file(s) from <127.0.0.1:38993>",
            "18.0 2026-11-24T01:00:30 004 evicted reason=Transfer input files failure at access point condorhost while sending files to execution point slot1_1@condorhost. Details: reading from file /home/tester/work/ev-text/e-hold-release/needed.txt: (errno 2) No such file or directory",
            "18.0 2026-11-24T01:00:30 012 held code=13 subcode=2 reason=Transfer input files failure at access point condorhost while sending files to execution point slot1_1@condorhost. Details: reading from file /home/tester/work/ev-text/e-hold-release/needed.txt: (errno 2) No such file or directory",
            "18.0 2026-11-24T01:00:30 013 released reason=via condor_release (by user tester)",
            "18.0 2026-11-24T01:00:31 040 transfer InputStarted +host",
            "18.0 2026-11-24T01:00:31 040 transfer InputFinished",
            "18.0 2026-11-24T01:00:31 001 executing slot=slot1_1@condorhost",
            "18.0 2026-11-24T01:00:31 006 image 475 mem=5 rss=4456",
            "18.0 2026-11-24T01:00:31 040 transfer OutputStarted",
            "18.0 2026-11-24T01:00:31 040 transfer OutputFinished",
            "18.0 2026-11-24T01:00:31 005 terminated exit 0 sent=74 received=471378",
        ],
    ),
    (
        "eventlog/text/f-hold-rm/f-hold-rm.log",
        &[
            "19.0 2026-11-24T01:00:32 000 submitted",
            "19.0 2026-11-24T01:00:33 040 transfer InputStarted +host",
            "19.0 2026-11-24T01:00:33 040 transfer InputFinished",
            "19.0 2026-11-24T01:00:33 021 remote-error starter on slot1_1@condorhost code=13 subcode=2 message=Failed to transfer files: SHADOW at 127.0.0.1 failed to send file(s) to <127.0.0.1:33633>: |Error: reading from file /home/tester/work/ev-text/f-hold-rm/needed.txt: (errno 2) No such file or directory; STARTER failed to receive file(s) from <127.0.0.1:38993>",
            "19.0 2026-11-24T01:00:33 004 evicted reason=Transfer input files failure at access point condorhost while sending files to execution point slot1_1@condorhost. Details: reading from file /home/tester/work/ev-text/f-hold-rm/needed.txt: (errno 2) No such file or directory",
            "19.0 2026-11-24T01:00:33 012 held code=13 subcode=2 reason=Transfer input files failure at access point condorhost while sending files to execution point slot1_1@condorhost. Details: reading from file /home/tester/work/ev-text/f-hold-rm/needed.txt: (errno 2) No such file or directory",
            "19.0 2026-11-24T01:00:33 009 aborted reason=via condor_rm (by user tester)",
        ],
    ),
    (
        "eventlog/text/g-rm-running/g-rm-running.log",
        &[
            "20.0 2026-11-24T01:00:33 000 submitted",
            "20.0 2026-11-24T01:00:36 040 transfer InputStarted +host",
            "20.0 2026-11-24T01:00:36 001 executing slot=slot1_1@condorhost",
            "20.0 2026-11-24T01:00:36 040 transfer InputFinished",
            "20.0 2026-11-24T01:00:38 006 image 475 mem=5 rss=4592",
            "20.0 2026-11-24T01:00:39 004 evicted",
            "20.0 2026-11-24T01:00:39 009 aborted reason=via condor_rm (by user tester)",
        ],
    ),
    (
        "eventlog/text/h-retries/h-retries.log",
        &[
            "21.0 2026-11-24T01:00:39 000 submitted",
            "21.0 2026-11-24T01:00:39 040 transfer InputStarted +host",
            "21.0 2026-11-24T01:00:39 040 transfer InputFinished",
            "21.0 2026-11-24T01:00:39 001 executing slot=slot1_1@condorhost",
            "21.0 2026-11-24T01:00:39 006 image 475 mem=5 rss=4580",
            "21.0 2026-11-24T01:00:39 040 transfer OutputStarted",
            "21.0 2026-11-24T01:00:39 040 transfer OutputFinished",
            "21.0 2026-11-24T01:00:39 004 requeued after=exit 3 reason=The job attribute OnExitRemove expression 'NumJobCompletions > JobMaxRetries || ExitCode =?= 0' evaluated to FALSE",
            "21.0 2026-11-24T01:00:41 040 transfer InputStarted +host",
            "21.0 2026-11-24T01:00:41 040 transfer InputFinished",
            "21.0 2026-11-24T01:00:41 001 executing slot=slot1_1@condorhost",
            "21.0 2026-11-24T01:00:41 040 transfer OutputStarted",
            "21.0 2026-11-24T01:00:41 040 transfer OutputFinished",
            "21.0 2026-11-24T01:00:41 004 requeued after=exit 3 reason=The job attribute OnExitRemove expression 'NumJobCompletions > JobMaxRetries || ExitCode =?= 0' evaluated to FALSE",
            "21.0 2026-11-24T01:00:43 040 transfer InputStarted +host",
            "21.0 2026-11-24T01:00:43 040 transfer InputFinished",
            "21.0 2026-11-24T01:00:43 001 executing slot=slot1_1@condorhost",
            "21.0 2026-11-24T01:00:43 040 transfer OutputStarted",
            "21.0 2026-11-24T01:00:43 040 transfer OutputFinished",
            "21.0 2026-11-24T01:00:43 005 terminated exit 3 sent=78 received=471378",
        ],
    ),
    (
        "eventlog/text/i-output-missing/i-output-missing.log",
        &[
            "22.0 2026-11-24T01:00:43 000 submitted",
            "22.0 2026-11-24T01:00:46 040 transfer InputStarted +host",
            "22.0 2026-11-24T01:00:46 040 transfer InputFinished",
            "22.0 2026-11-24T01:00:46 001 executing slot=slot1_1@condorhost",
            "22.0 2026-11-24T01:00:46 006 image 475 mem=5 rss=4452",
            "22.0 2026-11-24T01:00:46 040 transfer OutputStarted",
            "22.0 2026-11-24T01:00:46 040 transfer OutputFinished",
            "22.0 2026-11-24T01:00:46 021 remote-error starter on slot1_1@condorhost code=13 subcode=2 message=STARTER at 127.0.0.1 failed to send file(s) to <127.0.0.1:38993>: |Error: reading from file /var/lib/condor/execute/dir_18792/nothere.txt: (errno 2) No such file or directory; SHADOW failed to receive file(s) from <127.0.0.1:35619>",
            "22.0 2026-11-24T01:00:46 004 evicted reason=Transfer output files failure at execution point slot1_1@condorhost while sending files to access point condorhost. Details: reading from file /var/lib/condor/execute/dir_18792/nothere.txt: (errno 2) No such file or directory",
            "22.0 2026-11-24T01:00:46 012 held code=12 subcode=2 reason=Transfer output files failure at execution point slot1_1@condorhost while sending files to access point condorhost. Details: reading from file /var/lib/condor/execute/dir_18792/nothere.txt: (errno 2) No such file or directory",
            "22.0 2026-11-24T01:00:46 009 aborted reason=via condor_rm (by user tester)",
        ],
    ),
    (
        "eventlog/text/j-memory/j-memory.log",
        &[
            "23.0 2026-11-24T01:00:46 000 submitted",
            "23.0 2026-11-24T01:00:47 040 transfer InputFinished",
            "23.0 2026-11-24T01:00:48 001 executing slot=slot1_2@condorhost",
            "23.0 2026-11-24T01:00:51 006 image 424148 mem=409 rss=418116",
            "23.0 2026-11-24T01:01:08 040 transfer OutputStarted",
            "23.0 2026-11-24T01:01:08 040 transfer OutputFinished",
            "23.0 2026-11-24T01:01:08 005 terminated exit 0 sent=10 received=0",
        ],
    ),
    (
        "eventlog/text/j2-memory-policy/j2-memory-policy.log",
        &[
            "24.0 2026-11-24T01:01:09 000 submitted",
            "24.0 2026-11-24T01:01:10 040 transfer InputFinished",
            "24.0 2026-11-24T01:01:11 001 executing slot=slot1_2@condorhost",
            "24.0 2026-11-24T01:01:13 006 image 7500 mem=5 rss=4456",
            "24.0 2026-11-24T01:01:21 006 image 424148 mem=409 rss=418120",
            "24.0 2026-11-24T01:01:21 012 held code=3 subcode=42 reason=memory usage 409 MB exceeds request_memory 64 MB",
            "24.0 2026-11-24T01:01:21 009 aborted reason=via condor_rm (by user tester)",
        ],
    ),
    (
        "eventlog/text/k-vacate/k-vacate.log",
        &[
            "25.0 2026-11-24T01:01:21 000 submitted",
            "25.0 2026-11-24T01:01:24 040 transfer InputStarted +host",
            "25.0 2026-11-24T01:01:24 001 executing slot=slot1_2@condorhost",
            "25.0 2026-11-24T01:01:24 040 transfer InputFinished",
            "25.0 2026-11-24T01:01:26 006 image 475 mem=5 rss=4576",
            "25.0 2026-11-24T01:01:28 004 evicted",
            "25.0 2026-11-24T01:01:30 040 transfer InputStarted +host",
            "25.0 2026-11-24T01:01:30 001 executing slot=slot1_2@condorhost",
            "25.0 2026-11-24T01:01:30 040 transfer InputFinished",
            "25.0 2026-11-24T01:01:39 006 image 3092 mem=5 rss=4750",
            "25.0 2026-11-24T01:01:45 040 transfer OutputStarted",
            "25.0 2026-11-24T01:01:45 040 transfer OutputFinished",
            "25.0 2026-11-24T01:01:45 005 terminated exit 0 sent=80 received=471378",
        ],
    ),
    (
        "eventlog/text/l-periodic-remove/l-periodic-remove.log",
        &[
            "26.0 2026-11-24T01:01:45 000 submitted",
            "26.0 2026-11-24T01:01:45 040 transfer InputStarted +host",
            "26.0 2026-11-24T01:01:45 040 transfer InputFinished",
            "26.0 2026-11-24T01:01:45 001 executing slot=slot1_2@condorhost",
            "26.0 2026-11-24T01:01:48 006 image 475 mem=5 rss=4512",
            "26.0 2026-11-24T01:01:51 006 image 3092 mem=5 rss=4512",
            "26.0 2026-11-24T01:01:51 009 aborted reason=The job attribute PeriodicRemove expression 'JobStatus == 2 && (time() - EnteredCurrentStatus) > 5' evaluated to TRUE",
        ],
    ),
    (
        "eventlog/text/m-user-hold-release/m-user-hold-release.log",
        &[
            "27.0 2026-11-24T01:01:52 000 submitted",
            "27.0 2026-11-24T01:01:52 040 transfer InputStarted +host",
            "27.0 2026-11-24T01:01:52 040 transfer InputFinished",
            "27.0 2026-11-24T01:01:52 001 executing slot=slot1_2@condorhost",
            "27.0 2026-11-24T01:01:54 006 image 475 mem=5 rss=4516",
            "27.0 2026-11-24T01:01:55 004 evicted",
            "27.0 2026-11-24T01:01:55 012 held code=1 subcode=0 reason=via condor_hold (by user tester)",
            "27.0 2026-11-24T01:01:55 013 released reason=via condor_release (by user tester)",
            "27.0 2026-11-24T01:01:56 040 transfer InputStarted +host",
            "27.0 2026-11-24T01:01:56 040 transfer InputFinished",
            "27.0 2026-11-24T01:01:56 001 executing slot=slot1_2@condorhost",
            "27.0 2026-11-24T01:02:04 040 transfer OutputStarted",
            "27.0 2026-11-24T01:02:04 040 transfer OutputFinished",
            "27.0 2026-11-24T01:02:04 005 terminated exit 0 sent=79 received=471378",
        ],
    ),
    (
        "eventlog/json/a-exit0/a-exit0.log",
        &[
            "28.0 2026-11-24T01:02:14.525 000 submitted",
            "28.0 2026-11-24T01:02:14.574 040 transfer InputStarted +host",
            "28.0 2026-11-24T01:02:14.578 040 transfer InputFinished",
            "28.0 2026-11-24T01:02:14.580 001 executing slot=slot1_2@condorhost",
            "28.0 2026-11-24T01:02:14.585 006 image 475 mem=5 rss=4452",
            "28.0 2026-11-24T01:02:14.592 040 transfer OutputStarted",
            "28.0 2026-11-24T01:02:14.596 040 transfer OutputFinished",
            "28.0 2026-11-24T01:02:14.603 005 terminated exit 0 sent=74 received=471378",
        ],
    ),
    (
        "eventlog/json/b-cluster5/b-cluster5.log",
        &[
            "29.0 2026-11-24T01:02:15.135 000 submitted notes=item 0 args [in_0.txt out_0.txt ok]",
            "29.1 2026-11-24T01:02:15.135 000 submitted notes=item 1 args [in_1.txt out_1.txt sleep:2]",
            "29.2 2026-11-24T01:02:15.135 000 submitted notes=item 2 args [in_2.txt out_2.txt ok]",
            "29.3 2026-11-24T01:02:15.135 000 submitted notes=item 3 args [in_3.txt out_3.txt sleep:1]",
            "29.4 2026-11-24T01:02:15.135 000 submitted notes=item 4 args [in_4.txt out_4.txt ok]",
            "29.0 2026-11-24T01:02:16.281 040 transfer InputStarted +host",
            "29.0 2026-11-24T01:02:16.294 040 transfer InputFinished",
            "29.1 2026-11-24T01:02:16.300 040 transfer InputStarted +host",
            "29.0 2026-11-24T01:02:16.315 001 executing slot=slot1_2@condorhost",
            "29.2 2026-11-24T01:02:16.318 040 transfer InputStarted +host",
            "29.1 2026-11-24T01:02:16.323 001 executing slot=slot1_3@condorhost",
            "29.1 2026-11-24T01:02:16.324 040 transfer InputFinished",
            "29.2 2026-11-24T01:02:16.326 040 transfer InputFinished",
            "29.0 2026-11-24T01:02:16.335 006 image 475 mem=0 rss=0",
            "29.2 2026-11-24T01:02:16.335 001 executing slot=slot1_4@condorhost",
            "29.3 2026-11-24T01:02:16.347 040 transfer InputStarted +host",
            "29.3 2026-11-24T01:02:16.350 040 transfer InputFinished",
            "29.2 2026-11-24T01:02:16.356 006 image 23680 mem=5 rss=4500",
            "29.0 2026-11-24T01:02:16.356 040 transfer OutputStarted",
            "29.3 2026-11-24T01:02:16.357 001 executing slot=slot1_5@condorhost",
            "29.0 2026-11-24T01:02:16.361 040 transfer OutputFinished",
            "29.0 2026-11-24T01:02:16.369 005 terminated exit 0 sent=78 received=471379",
            "29.4 2026-11-24T01:02:16.377 040 transfer InputStarted +host",
            "29.2 2026-11-24T01:02:16.381 040 transfer OutputStarted",
            "29.4 2026-11-24T01:02:16.383 040 transfer InputFinished",
            "29.2 2026-11-24T01:02:16.384 040 transfer OutputFinished",
            "29.4 2026-11-24T01:02:16.386 001 executing slot=slot1_6@condorhost",
            "29.2 2026-11-24T01:02:16.394 005 terminated exit 0 sent=78 received=471379",
            "29.4 2026-11-24T01:02:16.394 006 image 475 mem=5 rss=4464",
            "29.4 2026-11-24T01:02:16.404 040 transfer OutputStarted",
            "29.4 2026-11-24T01:02:16.408 040 transfer OutputFinished",
            "29.4 2026-11-24T01:02:16.415 005 terminated exit 0 sent=78 received=471379",
            "29.3 2026-11-24T01:02:17.379 006 image 23680 mem=2 rss=1980",
            "29.3 2026-11-24T01:02:17.388 040 transfer OutputStarted",
            "29.3 2026-11-24T01:02:17.392 040 transfer OutputFinished",
            "29.3 2026-11-24T01:02:17.399 005 terminated exit 0 sent=83 received=471379",
            "29.1 2026-11-24T01:02:18.340 006 image 3092 mem=2 rss=1896",
            "29.1 2026-11-24T01:02:18.351 040 transfer OutputStarted",
            "29.1 2026-11-24T01:02:18.352 040 transfer OutputFinished",
            "29.1 2026-11-24T01:02:18.357 005 terminated exit 0 sent=83 received=471379",
        ],
    ),
    (
        "eventlog/json/c-exit3/c-exit3.log",
        &[
            "30.0 2026-11-24T01:02:18.920 000 submitted",
            "30.0 2026-11-24T01:02:21.303 040 transfer InputStarted +host",
            "30.0 2026-11-24T01:02:21.304 040 transfer InputFinished",
            "30.0 2026-11-24T01:02:21.306 001 executing slot=slot1_2@condorhost",
            "30.0 2026-11-24T01:02:21.313 006 image 475 mem=5 rss=4480",
            "30.0 2026-11-24T01:02:21.319 040 transfer OutputStarted",
            "30.0 2026-11-24T01:02:21.321 040 transfer OutputFinished",
            "30.0 2026-11-24T01:02:21.325 005 terminated exit 3 sent=78 received=471378",
        ],
    ),
    (
        "eventlog/json/d-sigabrt/d-sigabrt.log",
        &[
            "32.0 2026-11-24T01:02:24.383 000 submitted",
            "32.0 2026-11-24T01:02:25.503 040 transfer InputStarted +host",
            "32.0 2026-11-24T01:02:25.506 040 transfer InputFinished",
            "32.0 2026-11-24T01:02:25.507 001 executing slot=slot1_2@condorhost",
            "32.0 2026-11-24T01:02:25.512 006 image 475 mem=5 rss=4484",
            "32.0 2026-11-24T01:02:25.519 040 transfer OutputStarted",
            "32.0 2026-11-24T01:02:25.520 040 transfer OutputFinished",
            "32.0 2026-11-24T01:02:25.525 005 terminated signal 6 sent=77 received=471378",
        ],
    ),
    (
        "eventlog/json/d-sigsegv/d-sigsegv.log",
        &[
            "31.0 2026-11-24T01:02:21.657 000 submitted",
            "31.0 2026-11-24T01:02:24.279 040 transfer InputStarted +host",
            "31.0 2026-11-24T01:02:24.284 040 transfer InputFinished",
            "31.0 2026-11-24T01:02:24.286 001 executing slot=slot1_2@condorhost",
            "31.0 2026-11-24T01:02:24.291 006 image 475 mem=5 rss=4464",
            "31.0 2026-11-24T01:02:24.298 040 transfer OutputStarted",
            "31.0 2026-11-24T01:02:24.301 040 transfer OutputFinished",
            "31.0 2026-11-24T01:02:24.308 005 terminated signal 11 sent=77 received=471378",
        ],
    ),
    (
        "eventlog/json/e-hold-release/e-hold-release.log",
        &[
            "33.0 2026-11-24T01:02:26.045 000 submitted",
            "33.0 2026-11-24T01:02:27.175 040 transfer InputStarted +host",
            "33.0 2026-11-24T01:02:27.179 040 transfer InputFinished",
            "33.0 2026-11-24T01:02:27.180 021 remote-error starter on slot1_2@condorhost code=13 subcode=2 message=Failed to transfer files: SHADOW at 127.0.0.1 failed to send file(s) to <127.0.0.1:46839>: |Error: reading from file /home/tester/work/ev-json/e-hold-release/needed.txt: (errno 2) No such file or directory; STARTER failed to receive file(s) from <127.0.0.1:38993>",
            "33.0 2026-11-24T01:02:27.181 004 evicted reason=Transfer input files failure at access point condorhost while sending files to execution point slot1_2@condorhost. Details: reading from file /home/tester/work/ev-json/e-hold-release/needed.txt: (errno 2) No such file or directory",
            "33.0 2026-11-24T01:02:27.184 012 held code=13 subcode=2 reason=Transfer input files failure at access point condorhost while sending files to execution point slot1_2@condorhost. Details: reading from file /home/tester/work/ev-json/e-hold-release/needed.txt: (errno 2) No such file or directory",
            "33.0 2026-11-24T01:02:27.720 013 released reason=via condor_release (by user tester)",
            "33.0 2026-11-24T01:02:30.203 040 transfer InputStarted +host",
            "33.0 2026-11-24T01:02:30.204 040 transfer InputFinished",
            "33.0 2026-11-24T01:02:30.206 001 executing slot=slot1_2@condorhost",
            "33.0 2026-11-24T01:02:30.211 006 image 475 mem=5 rss=4476",
            "33.0 2026-11-24T01:02:30.219 040 transfer OutputStarted",
            "33.0 2026-11-24T01:02:30.223 040 transfer OutputFinished",
            "33.0 2026-11-24T01:02:30.232 005 terminated exit 0 sent=74 received=471378",
        ],
    ),
    (
        "eventlog/json/f-hold-rm/f-hold-rm.log",
        &[
            "34.0 2026-11-24T01:02:30.445 000 submitted",
            "34.0 2026-11-24T01:02:33.064 040 transfer InputStarted +host",
            "34.0 2026-11-24T01:02:33.067 040 transfer InputFinished",
            "34.0 2026-11-24T01:02:33.068 021 remote-error starter on slot1_2@condorhost code=13 subcode=2 message=Failed to transfer files: SHADOW at 127.0.0.1 failed to send file(s) to <127.0.0.1:40023>: |Error: reading from file /home/tester/work/ev-json/f-hold-rm/needed.txt: (errno 2) No such file or directory; STARTER failed to receive file(s) from <127.0.0.1:38993>",
            "34.0 2026-11-24T01:02:33.069 004 evicted reason=Transfer input files failure at access point condorhost while sending files to execution point slot1_2@condorhost. Details: reading from file /home/tester/work/ev-json/f-hold-rm/needed.txt: (errno 2) No such file or directory",
            "34.0 2026-11-24T01:02:33.075 012 held code=13 subcode=2 reason=Transfer input files failure at access point condorhost while sending files to execution point slot1_2@condorhost. Details: reading from file /home/tester/work/ev-json/f-hold-rm/needed.txt: (errno 2) No such file or directory",
            "34.0 2026-11-24T01:02:33.187 009 aborted reason=via condor_rm (by user tester)",
        ],
    ),
    (
        "eventlog/json/g-rm-running/g-rm-running.log",
        &[
            "35.0 2026-11-24T01:02:33.258 000 submitted",
            "35.0 2026-11-24T01:02:34.307 040 transfer InputStarted +host",
            "35.0 2026-11-24T01:02:34.310 040 transfer InputFinished",
            "35.0 2026-11-24T01:02:34.312 001 executing slot=slot1_2@condorhost",
            "35.0 2026-11-24T01:02:36.319 006 image 3092 mem=2 rss=2012",
            "35.0 2026-11-24T01:02:37.556 004 evicted",
            "35.0 2026-11-24T01:02:37.558 009 aborted reason=via condor_rm (by user tester)",
        ],
    ),
    (
        "eventlog/json/h-retries/h-retries.log",
        &[
            "36.0 2026-11-24T01:02:37.615 000 submitted",
            "36.0 2026-11-24T01:02:38.219 040 transfer InputStarted +host",
            "36.0 2026-11-24T01:02:38.224 040 transfer InputFinished",
            "36.0 2026-11-24T01:02:38.226 001 executing slot=slot1_2@condorhost",
            "36.0 2026-11-24T01:02:38.231 006 image 475 mem=5 rss=4472",
            "36.0 2026-11-24T01:02:38.239 040 transfer OutputStarted",
            "36.0 2026-11-24T01:02:38.243 040 transfer OutputFinished",
            "36.0 2026-11-24T01:02:38.251 004 requeued after=exit 3 reason=The job attribute OnExitRemove expression 'NumJobCompletions > JobMaxRetries || ExitCode =?= 0' evaluated to FALSE",
            "36.0 2026-11-24T01:02:41.249 040 transfer InputStarted +host",
            "36.0 2026-11-24T01:02:41.254 001 executing slot=slot1_2@condorhost",
            "36.0 2026-11-24T01:02:41.254 040 transfer InputFinished",
            "36.0 2026-11-24T01:02:41.261 006 image 475 mem=5 rss=4604",
            "36.0 2026-11-24T01:02:41.270 040 transfer OutputStarted",
            "36.0 2026-11-24T01:02:41.274 040 transfer OutputFinished",
            "36.0 2026-11-24T01:02:41.278 004 requeued after=exit 3 reason=The job attribute OnExitRemove expression 'NumJobCompletions > JobMaxRetries || ExitCode =?= 0' evaluated to FALSE",
            "36.0 2026-11-24T01:02:43.265 040 transfer InputStarted +host",
            "36.0 2026-11-24T01:02:43.267 040 transfer InputFinished",
            "36.0 2026-11-24T01:02:43.269 001 executing slot=slot1_2@condorhost",
            "36.0 2026-11-24T01:02:43.281 040 transfer OutputStarted",
            "36.0 2026-11-24T01:02:43.283 040 transfer OutputFinished",
            "36.0 2026-11-24T01:02:43.288 005 terminated exit 3 sent=78 received=471378",
        ],
    ),
    (
        "eventlog/json/i-output-missing/i-output-missing.log",
        &[
            "37.0 2026-11-24T01:02:43.526 000 submitted",
            "37.0 2026-11-24T01:02:46.143 040 transfer InputStarted +host",
            "37.0 2026-11-24T01:02:46.148 040 transfer InputFinished",
            "37.0 2026-11-24T01:02:46.150 001 executing slot=slot1_2@condorhost",
            "37.0 2026-11-24T01:02:46.156 006 image 475 mem=5 rss=4476",
            "37.0 2026-11-24T01:02:46.165 040 transfer OutputStarted",
            "37.0 2026-11-24T01:02:46.167 040 transfer OutputFinished",
            "37.0 2026-11-24T01:02:46.168 021 remote-error starter on slot1_2@condorhost code=13 subcode=2 message=STARTER at 127.0.0.1 failed to send file(s) to <127.0.0.1:38993>: |Error: reading from file /var/lib/condor/execute/dir_21256/nothere.txt: (errno 2) No such file or directory; SHADOW failed to receive file(s) from <127.0.0.1:35495>",
            "37.0 2026-11-24T01:02:46.170 004 evicted reason=Transfer output files failure at execution point slot1_2@condorhost while sending files to access point condorhost. Details: reading from file /var/lib/condor/execute/dir_21256/nothere.txt: (errno 2) No such file or directory",
            "37.0 2026-11-24T01:02:46.174 012 held code=12 subcode=2 reason=Transfer output files failure at execution point slot1_2@condorhost while sending files to access point condorhost. Details: reading from file /var/lib/condor/execute/dir_21256/nothere.txt: (errno 2) No such file or directory",
            "37.0 2026-11-24T01:02:46.269 009 aborted reason=via condor_rm (by user tester)",
        ],
    ),
    (
        "eventlog/json/j-memory/j-memory.log",
        &[
            "38.0 2026-11-24T01:02:46.348 000 submitted",
            "38.0 2026-11-24T01:02:47.397 040 transfer InputFinished",
            "38.0 2026-11-24T01:02:48.403 001 executing slot=slot1_3@condorhost",
            "38.0 2026-11-24T01:02:50.410 006 image 7500 mem=5 rss=4476",
            "38.0 2026-11-24T01:02:52.414 006 image 424148 mem=409 rss=418132",
            "38.0 2026-11-24T01:03:08.689 040 transfer OutputStarted",
            "38.0 2026-11-24T01:03:08.690 040 transfer OutputFinished",
            "38.0 2026-11-24T01:03:08.695 005 terminated exit 0 sent=10 received=0",
        ],
    ),
    (
        "eventlog/json/j2-memory-policy/j2-memory-policy.log",
        &[
            "39.0 2026-11-24T01:03:09.077 000 submitted",
            "39.0 2026-11-24T01:03:09.133 040 transfer InputFinished",
            "39.0 2026-11-24T01:03:10.137 001 executing slot=slot1_3@condorhost",
            "39.0 2026-11-24T01:03:12.144 006 image 7500 mem=5 rss=4456",
            "39.0 2026-11-24T01:03:22.164 006 image 424148 mem=409 rss=417996",
            "39.0 2026-11-24T01:03:22.214 012 held code=3 subcode=42 reason=memory usage 409 MB exceeds request_memory 64 MB",
            "39.0 2026-11-24T01:03:22.427 009 aborted reason=via condor_rm (by user tester)",
        ],
    ),
    (
        "eventlog/json/k-vacate/k-vacate.log",
        &[
            "40.0 2026-11-24T01:03:22.505 000 submitted",
            "40.0 2026-11-24T01:03:25.219 040 transfer InputStarted +host",
            "40.0 2026-11-24T01:03:25.224 040 transfer InputFinished",
            "40.0 2026-11-24T01:03:25.226 001 executing slot=slot1_3@condorhost",
            "40.0 2026-11-24T01:03:27.233 006 image 475 mem=5 rss=4476",
            "40.0 2026-11-24T01:03:29.290 004 evicted",
            "40.0 2026-11-24T01:03:31.257 040 transfer InputStarted +host",
            "40.0 2026-11-24T01:03:31.259 040 transfer InputFinished",
            "40.0 2026-11-24T01:03:31.261 001 executing slot=slot1_3@condorhost",
            "40.0 2026-11-24T01:03:37.278 006 image 3092 mem=5 rss=4500",
            "40.0 2026-11-24T01:03:46.279 040 transfer OutputStarted",
            "40.0 2026-11-24T01:03:46.281 040 transfer OutputFinished",
            "40.0 2026-11-24T01:03:46.289 005 terminated exit 0 sent=80 received=471378",
        ],
    ),
    (
        "eventlog/json/l-periodic-remove/l-periodic-remove.log",
        &[
            "41.0 2026-11-24T01:03:46.857 000 submitted",
            "41.0 2026-11-24T01:03:46.905 040 transfer InputStarted +host",
            "41.0 2026-11-24T01:03:46.910 040 transfer InputFinished",
            "41.0 2026-11-24T01:03:46.913 001 executing slot=slot1_3@condorhost",
            "41.0 2026-11-24T01:03:49.920 006 image 475 mem=5 rss=4452",
            "41.0 2026-11-24T01:03:52.924 006 image 3092 mem=5 rss=4452",
            "41.0 2026-11-24T01:03:52.940 009 aborted reason=The job attribute PeriodicRemove expression 'JobStatus == 2 && (time() - EnteredCurrentStatus) > 5' evaluated to TRUE",
        ],
    ),
    (
        "eventlog/json/m-user-hold-release/m-user-hold-release.log",
        &[
            "42.0 2026-11-24T01:03:53.272 000 submitted",
            "42.0 2026-11-24T01:03:53.316 040 transfer InputStarted +host",
            "42.0 2026-11-24T01:03:53.320 040 transfer InputFinished",
            "42.0 2026-11-24T01:03:53.323 001 executing slot=slot1_3@condorhost",
            "42.0 2026-11-24T01:03:55.330 006 image 475 mem=5 rss=4476",
            "42.0 2026-11-24T01:03:56.629 004 evicted",
            "42.0 2026-11-24T01:03:56.636 012 held code=1 subcode=0 reason=via condor_hold (by user tester)",
            "42.0 2026-11-24T01:03:56.706 013 released reason=via condor_release (by user tester)",
            "42.0 2026-11-24T01:03:57.319 040 transfer InputStarted +host",
            "42.0 2026-11-24T01:03:57.321 040 transfer InputFinished",
            "42.0 2026-11-24T01:03:57.323 001 executing slot=slot1_3@condorhost",
            "42.0 2026-11-24T01:04:05.342 040 transfer OutputStarted",
            "42.0 2026-11-24T01:04:05.346 040 transfer OutputFinished",
            "42.0 2026-11-24T01:04:05.355 005 terminated exit 0 sent=79 received=471378",
        ],
    ),
    (
        "eventlog/config-json-not-effective/t3.log",
        &[
            "10.0 2026-11-24T00:57:15 000 submitted",
            "10.0 2026-11-24T00:57:17 040 transfer InputStarted +host",
            "10.0 2026-11-24T00:57:17 040 transfer InputFinished",
            "10.0 2026-11-24T00:57:18 001 executing slot=slot1_1@condorhost",
            "10.0 2026-11-24T00:57:18 006 image 475 mem=5 rss=4456",
            "10.0 2026-11-24T00:57:18 040 transfer OutputStarted",
            "10.0 2026-11-24T00:57:18 040 transfer OutputFinished",
            "10.0 2026-11-24T00:57:18 005 terminated exit 0 sent=74 received=471378",
        ],
    ),
];

fn format_of(path: &str) -> EventLogFormat {
    if path.starts_with("eventlog/json/") {
        EventLogFormat::Json
    } else {
        EventLogFormat::Text
    }
}

fn summaries(events: &[JobEvent]) -> Vec<String> {
    events.iter().map(summary).collect()
}

#[test]
fn every_recorded_log_has_an_expected_sequence() {
    let mut on_disk = vec!["eventlog/config-json-not-effective/t3.log".to_owned()];
    for format in ["text", "json"] {
        for case in common::list(&format!("eventlog/{format}")) {
            on_disk.push(format!("eventlog/{format}/{case}/{case}.log"));
        }
    }
    on_disk.sort();
    let mut covered: Vec<String> = EXPECTED.iter().map(|(p, _)| (*p).to_owned()).collect();
    covered.sort();
    assert_eq!(
        on_disk, covered,
        "a recorded log has no expected events here"
    );
    assert_eq!(covered.len(), 31);
}

#[test]
fn recorded_logs_give_the_expected_events() {
    for (path, expected) in EXPECTED {
        let bytes = common::read(path);
        let known = read_all(&bytes, Some(format_of(path)));
        assert_eq!(summaries(&known), *expected, "{path}");
        let detected = read_all(&bytes, None);
        assert_eq!(known, detected, "{path}: detection changed the result");
    }
}

#[test]
fn format_is_detected_from_the_content() {
    for (path, _) in EXPECTED {
        let bytes = common::read(path);
        assert_eq!(
            EventLogFormat::detect(&bytes).unwrap(),
            Some(format_of(path)),
            "{path}"
        );
        let mut reader = EventLogReader::detecting();
        reader.feed(&bytes).unwrap();
        assert_eq!(reader.format(), Some(format_of(path)), "{path}");
    }
}

/// The JSON logs come from `+UserLogUseXML = 2` in the submit file; the text
/// ones have no such line. In particular `t3.sub`, submitted while the config
/// said `DEFAULT_USERLOG_FORMAT_OPTIONS = JSON`, still produced a text log.
#[test]
fn submit_files_explain_the_formats() {
    for (path, _) in EXPECTED {
        let sub_path = path.replace(".log", ".sub");
        let sub = common::read_text(&sub_path);
        let json_attr = sub.lines().any(|l| {
            let l = l.replace(' ', "");
            l.eq_ignore_ascii_case("+UserLogUseXML=2")
        });
        assert_eq!(
            json_attr,
            format_of(path) == EventLogFormat::Json,
            "{sub_path}"
        );
    }
    let t3 = common::read("eventlog/config-json-not-effective/t3.log");
    assert_eq!(
        EventLogFormat::detect(&t3).unwrap(),
        Some(EventLogFormat::Text)
    );
}

/// The cluster in each log is the one `condor_submit` reported in the case's
/// `commands.txt`, with as many procs as jobs submitted.
#[test]
fn clusters_match_the_submit_transcripts() {
    for (path, _) in EXPECTED {
        let Some(dir) = path.rsplit_once('/').map(|(d, _)| d) else {
            continue;
        };
        let commands = common::fixtures_dir().join(dir).join("commands.txt");
        if !commands.exists() {
            assert!(
                path.contains("config-json-not-effective"),
                "{path}: no commands.txt"
            );
            continue;
        }
        let text = std::fs::read_to_string(&commands).unwrap();
        let line = text
            .lines()
            .find(|l| l.contains(" job(s) submitted to cluster "))
            .unwrap_or_else(|| panic!("{}: no submit line", commands.display()));
        let (count, cluster) = line
            .trim_end_matches('.')
            .split_once(" job(s) submitted to cluster ")
            .unwrap();
        let events = read_all(&common::read(path), None);
        let mut procs: Vec<u64> = events.iter().map(|e| e.proc).collect();
        procs.sort();
        procs.dedup();
        assert!(
            events.iter().all(|e| e.cluster.to_string() == cluster),
            "{path}"
        );
        assert_eq!(procs.len().to_string(), count, "{path}");
    }
}

#[test]
fn hosts_are_kept() {
    for (path, _) in EXPECTED {
        for event in read_all(&common::read(path), None) {
            match &event.kind {
                JobEventKind::Executing { host, .. } => assert_eq!(host, STARTD, "{path}"),
                JobEventKind::FileTransfer { stage, host } => {
                    let started = *stage == FileTransferStage::InputStarted;
                    assert_eq!(host.is_some(), started, "{path}: {event:?}");
                    if let Some(host) = host {
                        assert!(
                            host.starts_with("<127.0.0.1:38993?") && host.contains("&sock=slot1_"),
                            "{path}: {host}"
                        );
                    }
                }
                _ => {}
            }
        }
    }
}

/// Offsets point at the first byte of each event, in increasing order.
#[test]
fn offsets_point_at_event_starts() {
    for (path, _) in EXPECTED {
        let bytes = common::read(path);
        let events = read_all(&bytes, None);
        assert_eq!(events[0].offset, 0, "{path}");
        for pair in events.windows(2) {
            assert!(pair[0].offset < pair[1].offset, "{path}");
        }
        for event in &events {
            let at = &bytes[usize::try_from(event.offset).unwrap()..];
            match format_of(path) {
                EventLogFormat::Json => assert!(at.starts_with(b"{\n"), "{path}"),
                _ => {
                    let header = format!("{:03} (", event.kind.code());
                    assert!(at.starts_with(header.as_bytes()), "{path}: {event:?}");
                }
            }
        }
    }
}

/// A tiny deterministic generator, so that the chunk sizes are random-looking
/// but every run tests the same splits.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % n as u64).unwrap()
    }
}

fn read_in_chunks(bytes: &[u8], sizes: &mut dyn FnMut() -> usize) -> Vec<JobEvent> {
    let mut reader = EventLogReader::detecting();
    let mut events = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = sizes().clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(n);
        events.extend(reader.feed(chunk).expect("feed"));
        rest = tail;
    }
    events.extend(reader.finish().expect("finish"));
    events
}

#[test]
fn byte_by_byte_gives_the_same_events() {
    for (path, _) in EXPECTED {
        let bytes = common::read(path);
        let whole = read_all(&bytes, None);
        assert_eq!(read_in_chunks(&bytes, &mut || 1), whole, "{path}");
    }
}

#[test]
fn random_chunks_give_the_same_events() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for (path, _) in EXPECTED {
        let bytes = common::read(path);
        let whole = read_all(&bytes, None);
        for max in [3, 17, 64, 500, 4096] {
            for _ in 0..4 {
                let got = read_in_chunks(&bytes, &mut || 1 + rng.below(max));
                assert_eq!(got, whole, "{path}, chunks up to {max} bytes");
            }
        }
    }
}

/// Every split point in two, for the smaller logs (quadratic cost).
#[test]
fn every_two_way_split_gives_the_same_events() {
    let mut tested = 0;
    for (path, _) in EXPECTED {
        let bytes = common::read(path);
        if bytes.len() > 3_000 {
            continue;
        }
        tested += 1;
        let whole = read_all(&bytes, None);
        for split in 0..=bytes.len() {
            let mut reader = EventLogReader::detecting();
            let mut events = reader.feed(&bytes[..split]).unwrap();
            events.extend(reader.feed(&bytes[split..]).unwrap());
            events.extend(reader.finish().unwrap());
            assert_eq!(events, whole, "{path} split at {split}");
        }
    }
    assert!(tested >= 20, "only {tested} logs were small enough");
}

/// One log per format compared field by field, hosts included.
#[test]
fn a_exit0_in_full() {
    let text = read_all(&common::read("eventlog/text/a-exit0/a-exit0.log"), None);
    let time = |s: u8| EventTime {
        year: Some(2026),
        month: 11,
        day: 24,
        hour: 1,
        minute: 0,
        second: s,
        millisecond: None,
    };
    assert_eq!(
        text[0],
        JobEvent {
            cluster: 13,
            proc: 0,
            time: time(19),
            kind: JobEventKind::Submitted { notes: None },
            offset: 0,
        }
    );
    assert_eq!(
        text[1].kind,
        JobEventKind::FileTransfer {
            stage: FileTransferStage::InputStarted,
            host: Some(
                "<127.0.0.1:38993?addrs=127.0.0.1-38993&alias=condorhost&noUDP&sock=slot1_1_14606_ff8b_7>"
                    .into()
            ),
        }
    );
    assert_eq!(
        text[3].kind,
        JobEventKind::Executing {
            host: STARTD.into(),
            slot_name: Some("slot1_1@condorhost".into()),
        }
    );
    assert_eq!(
        text[7].kind,
        JobEventKind::Terminated {
            exit: JobExit::Normal { exit_code: 0 },
            bytes_sent: Some(74),
            bytes_received: Some(471_378),
        }
    );

    let json = read_all(&common::read("eventlog/json/a-exit0/a-exit0.log"), None);
    assert_eq!(
        json[0].time,
        EventTime {
            year: Some(2026),
            month: 11,
            day: 24,
            hour: 1,
            minute: 2,
            second: 14,
            millisecond: Some(525),
        }
    );
    assert_eq!(
        json[3].kind,
        JobEventKind::Executing {
            host: STARTD.into(),
            slot_name: Some("slot1_2@condorhost".into()),
        }
    );
    // Byte counts are floats (`74.0`) in JSON and come out as integers.
    assert_eq!(json[7].kind, text[7].kind);
}

/// Across the two runs, the same case gives the same outcome events.
#[test]
fn text_and_json_runs_agree_on_outcomes() {
    for case in common::list("eventlog/text") {
        let outcome = |format: &str| -> Vec<String> {
            let path = format!("eventlog/{format}/{case}/{case}.log");
            read_all(&common::read(&path), None)
                .iter()
                .filter(|e| matches!(e.kind.code(), 4 | 5 | 9 | 12 | 13))
                .map(|e| {
                    // Paths and slots differ between the runs.
                    let s = summary(e).replace("ev-json", "ev-text");
                    let s = s
                        .split_once(' ')
                        .unwrap()
                        .1
                        .split_once(' ')
                        .unwrap()
                        .1
                        .to_owned();
                    s.replace("slot1_2", "slot1_1")
                        .replace("dir_21256", "dir_18792")
                })
                .collect()
        };
        assert_eq!(outcome("text"), outcome("json"), "{case}");
    }
}

// ------------------------------------------------------------------ follower

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("pymw-condor-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn append(path: &std::path::Path, bytes: &[u8]) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(bytes).unwrap();
}

#[test]
fn follower_reads_a_growing_log() {
    let tmp = TempDir::new("growing");
    for path in [
        "eventlog/text/h-retries/h-retries.log",
        "eventlog/json/b-cluster5/b-cluster5.log",
    ] {
        let bytes = common::read(path);
        let whole = read_all(&bytes, None);
        let log = tmp.0.join(path.rsplit('/').next().unwrap());
        let mut follower = EventLogFollower::new(&log);
        // The schedd has not created the log yet.
        assert!(follower.poll().unwrap().is_empty());
        assert_eq!(follower.offset(), 0);

        let mut events = Vec::new();
        let mut rng = XorShift(42);
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let n = (1 + rng.below(700)).min(rest.len());
            append(&log, &rest[..n]);
            rest = &rest[n..];
            events.extend(follower.poll().unwrap());
            // The stored offset is always an event boundary.
            let offset = usize::try_from(follower.offset()).unwrap();
            assert!(
                offset == 0
                    || bytes[..offset].ends_with(b"...\n")
                    || bytes[..offset].ends_with(b"}\n")
            );
        }
        assert_eq!(events, whole, "{path}");
        assert_eq!(follower.offset(), bytes.len() as u64);
        assert!(follower.poll().unwrap().is_empty());
        assert_eq!(follower.path(), log.as_path());

        // A master that stored an offset resumes there and reads nothing twice.
        let middle = whole[whole.len() / 2].offset;
        let mut resumed = EventLogFollower::resume(&log, middle);
        let tail = resumed.poll().unwrap();
        assert_eq!(tail, whole[whole.len() / 2..], "{path}");

        // A master that stored nothing reads from 0: same events, same
        // offsets, so the ones it already handled are recognisable.
        let mut again = EventLogFollower::new(&log);
        assert_eq!(again.poll().unwrap(), whole, "{path}");
    }
}

#[test]
fn follower_reports_a_truncated_log() {
    let tmp = TempDir::new("truncated");
    let log = tmp.0.join("a.log");
    append(&log, &common::read("eventlog/text/a-exit0/a-exit0.log"));
    let mut follower = EventLogFollower::new(&log);
    assert_eq!(follower.poll().unwrap().len(), 8);
    std::fs::write(&log, b"").unwrap();
    let err = follower.poll().unwrap_err();
    assert!(
        matches!(err, EventLogError::Truncated { len: 0, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("truncated or replaced"), "{err}");
}
