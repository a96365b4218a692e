//! The remote-submission client and remote mode against a local HTTP
//! server that replays the recorded replies of `remote-submit/exchanges/`
//! (status line, headers and body as recorded; only `Content-Length` is
//! recomputed where a reply is adapted to the job names of the run) and
//! records every request, which is compared with the recorded request byte
//! for byte (request line, `Content-Type`, body).

mod common;

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{bytes, text};
use pymw_boinc::client::{ClientError, RemoteClient};
use pymw_boinc::remote::{self, Batch, BatchRef, InputFile, Job, JobState, RemoteError};
use pymw_boinc::{BoincBackend, BoincConfig};
use pymw_core::backend::{Backend, Dispatch, Event, EventSink};
use pymw_core::wire::{self, Outcome, OutputBody, WorkerStats};

/// Doubles a number.
#[pymw_macros::task(crate = "pymw_core")]
fn double(x: u64) -> u64 {
    x * 2
}

const AUTH: &str = "deadbeefdeadbeefdeadbeefdeadbeef";

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The request XML of an RPC (`request=<form-encoded XML>`).
    fn xml(&self) -> String {
        let body = String::from_utf8_lossy(&self.body);
        form_decode(body.strip_prefix("request=").unwrap_or(&body))
    }
}

fn form_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// A reply: the recorded status line and headers, and a body.
struct Reply {
    head: String,
    body: Vec<u8>,
}

/// The recorded reply of an exchange, with `replace` applied to its body.
fn recorded_reply(exchange: &str, replace: &[(String, String)]) -> Reply {
    let head = text(&format!(
        "remote-submit/exchanges/{exchange}.http-response-headers.txt"
    ));
    let body_file = ["response.xml", "response-body.bin"]
        .iter()
        .map(|ext| format!("remote-submit/exchanges/{exchange}.{ext}"))
        .find(|p| common::fixtures_dir().join(p).exists())
        .unwrap();
    let mut body = bytes(&body_file);
    if !replace.is_empty() {
        let mut t = String::from_utf8(body).unwrap();
        for (a, b) in replace {
            t = t.replace(a.as_str(), b);
        }
        body = t.into_bytes();
    }
    Reply { head, body }
}

/// The recorded request of an exchange: request line, Content-Type, body.
fn recorded_request(exchange: &str) -> (String, Option<String>, Vec<u8>) {
    let raw = bytes(&format!(
        "remote-submit/exchanges/{exchange}.http-request.txt"
    ));
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap().to_owned();
    let content_type = lines
        .filter_map(|l| l.split_once(": "))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.to_owned());
    (line, content_type, raw[split + 4..].to_vec())
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// A one-request-per-connection HTTP/1.1 server on 127.0.0.1 (a thread
/// with its own tokio runtime).
struct Server {
    port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    fn start(handler: Arc<Handler>) -> Server {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let handler = handler.clone();
                    let log = log.clone();
                    tokio::spawn(async move { serve(stream, &*handler, &log).await });
                }
            });
        });
        Server { port, requests }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/pymw/", self.port)
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

async fn serve(mut stream: tokio::net::TcpStream, handler: &Handler, log: &Mutex<Vec<Request>>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let target = first.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    let request = Request {
        method,
        target,
        headers,
        body,
    };
    let reply = handler(&request);
    log.lock().unwrap().push(request);
    let mut out = String::new();
    for line in reply.head.split("\r\n").filter(|l| !l.is_empty()) {
        let name = line
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if name != "content-length" && name != "connection" && name != "transfer-encoding" {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        reply.body.len()
    ));
    let _ = stream.write_all(out.as_bytes()).await;
    let _ = stream.write_all(&reply.body).await;
    let _ = stream.shutdown().await;
}

/// Serves exactly the recorded replies of `exchanges`, in order.
fn replay(exchanges: &[&'static str]) -> Server {
    let queue = Mutex::new(exchanges.to_vec());
    Server::start(Arc::new(move |_req: &Request| {
        let name = queue.lock().unwrap().remove(0);
        recorded_reply(name, &[])
    }))
}

fn assert_same_request(ours: &Request, exchange: &str) {
    let (line, content_type, body) = recorded_request(exchange);
    assert_eq!(
        format!("{} {} HTTP/1.1", ours.method, ours.target),
        line,
        "{exchange}"
    );
    assert_eq!(
        ours.header("content-type").map(str::to_owned),
        content_type,
        "{exchange}"
    );
    assert_eq!(
        String::from_utf8_lossy(&ours.body),
        String::from_utf8_lossy(&body),
        "{exchange}: body"
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The batch of exchange 04, built with the request types.
fn recorded_batch() -> Batch {
    let job = |n: u32, cl: &str, src: &str| Job {
        name: Some(format!("rsA_012602_j{n}")),
        command_line: Some(cl.to_owned()),
        input_files: vec![InputFile::Inline(src.to_owned())],
    };
    Batch {
        app_name: "probebatch".into(),
        batch_name: Some("rsA_012602".into()),
        jobs: vec![
            job(
                0,
                "--tag rs --stderr hello-from-j0",
                "1 2 3 inline job zero\n",
            ),
            job(
                1,
                "--tag rs --stderr failing-job-j1 --exit 3",
                "4 5 6 inline job one\n",
            ),
            job(2, "--tag rs --sleep 25", "7 8 9 inline job two\n"),
        ],
        ..Batch::default()
    }
}

#[test]
fn every_call_sends_the_recorded_request_and_reads_the_recorded_reply() {
    let exchanges = [
        "01-ping",
        "04-submit_batch-inline",
        "06-query_batch-queued",
        "12-query_batch-done",
        "10-query_job-done",
        "15-query_job-error",
        "16-query_completed_job-success",
        "17-query_completed_job-error",
        "18-get_output-result_file",
        "26-retire_batch",
        "41-abort_jobs",
    ];
    let server = replay(&exchanges);
    let client = RemoteClient::new(&server.url(), AUTH).unwrap();
    runtime().block_on(async {
        client.ping().await.unwrap();
        assert_eq!(client.submit_batch(&recorded_batch()).await.unwrap(), 1);
        let queued = client.query_batch(&BatchRef::Id(1), true).await.unwrap();
        assert!(
            queued
                .jobs
                .iter()
                .all(|j| j.status == Some(JobState::Queued))
        );
        let done = client.query_batch(&BatchRef::Id(1), true).await.unwrap();
        assert_eq!(done.jobs[0].canonical_instance_id, Some(63));
        assert_eq!(
            done.jobs[1].errors,
            ["too_many_error_results", "too_many_total_results"]
        );
        assert_eq!(done.jobs[1].exit_statuses, [3, 3]);
        let instances = client.query_job(58).await.unwrap();
        assert_eq!(
            (instances[0].name.as_str(), instances[0].id),
            ("rsA_012602_j0_0", 63)
        );
        assert_eq!(client.query_job(59).await.unwrap().len(), 2);
        let completed = client.query_completed_job("rsA_012602_j0").await.unwrap();
        assert!(completed.stderr_out.unwrap().contains("hello-from-j0"));
        let failed = client.query_completed_job("rsA_012602_j1").await.unwrap();
        assert!(failed.truncated_by_server && failed.error_mask.0 == 10);
        let file = client
            .result_file("rsA_012602_j0_0", 0, 1 << 20)
            .await
            .unwrap();
        assert_eq!(
            file,
            bytes("remote-submit/exchanges/18-get_output-result_file.response-body.bin")
        );
        client.retire_batch(1).await.unwrap();
        assert_eq!(
            client.abort_jobs(&["rsD_012738_j0"]).await.unwrap(),
            ["rsD_012738_j0"]
        );
    });
    let requests = server.requests();
    assert_eq!(requests.len(), exchanges.len());
    for (ours, exchange) in requests.iter().zip(exchanges) {
        assert_same_request(ours, exchange);
    }
}

#[test]
fn errors_in_http_200_replies_are_errors() {
    let server = replay(&[
        "20-get_output-result_file-bad-auth_str",
        "19-get_output-result_file-bad-file_num",
        "51-error-wrong-authenticator",
        "39-get_output-batch_files-by-name",
    ]);
    let client = RemoteClient::new(&server.url(), AUTH).unwrap();
    runtime().block_on(async {
        let e = client.result_file("rsA_012602_j0_0", 0, 1 << 20).await.unwrap_err();
        assert!(matches!(&e, ClientError::Remote(RemoteError::GetOutput(m)) if m == "bad authenticator"), "{e}");
        let e = client.result_file("rsA_012602_j0_0", 1, 1 << 20).await.unwrap_err();
        assert!(e.to_string().contains("bad file num"), "{e}");
        let e = client.ping().await.unwrap_err();
        assert!(matches!(&e, ClientError::Remote(RemoteError::Server(s)) if s.kind() == remote::ServerErrorKind::BadAuthenticator), "{e}");
        let e = client.result_file("x", 0, 1 << 20).await.unwrap_err();
        assert!(matches!(e, ClientError::Status { status: 302, .. }), "{e}");
    });
    // The size bound holds whatever the server sends.
    let server = replay(&["18-get_output-result_file"]);
    let client = RemoteClient::new(&server.url(), AUTH).unwrap();
    let e = runtime()
        .block_on(client.result_file("rsA_012602_j0_0", 0, 10))
        .unwrap_err();
    assert!(matches!(e, ClientError::TooLarge { limit: 10, .. }), "{e}");
}

#[test]
fn https_urls_speak_tls() {
    // A listener that takes the first bytes of the connection and hangs up:
    // a TLS ClientHello starts with the handshake record type 0x16.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let first = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut b = [0u8; 3];
        s.read_exact(&mut b).unwrap();
        let _ = s.write_all(b"nope");
        b
    });
    let client = RemoteClient::new(&format!("https://127.0.0.1:{port}/pymw/"), AUTH).unwrap();
    let e = runtime().block_on(client.ping()).unwrap_err();
    assert!(matches!(e, ClientError::Http { .. }), "{e}");
    let b = first.join().unwrap();
    assert_eq!(b[0], 0x16, "TLS handshake record");
    assert_eq!(b[1], 3, "TLS major version");
}

/// Remote mode end to end: the server answers with the recorded replies of
/// batch 1 (j0 done, j1 failed with exit code 3, j2 running then done),
/// adapted to the run's job names.
#[test]
fn remote_mode_submits_follows_fetches_and_retires() {
    struct State {
        names: Vec<String>,
        query_batch: usize,
        outputs: HashMap<String, Vec<u8>>,
    }
    let state = Arc::new(Mutex::new(State {
        names: Vec::new(),
        query_batch: 0,
        outputs: HashMap::new(),
    }));
    let s = state.clone();
    let server = Server::start(Arc::new(move |req: &Request| {
        let mut st = s.lock().unwrap();
        let subst = |st: &State| recorded_names(&st.names);
        if req.method == "GET" && req.target.contains("result.php?resultid=") {
            // The public task page, read for a failed job's stderr since
            // query_completed_job fails (17): one without a stderr section.
            return recorded_reply("68-get_output-unknown-result", &[]);
        }
        if req.method == "GET" {
            let result = result_name(&req.target);
            let auth = req.target.split("auth_str=").nth(1).unwrap();
            if auth != remote::auth_str(AUTH, &result) {
                return recorded_reply("20-get_output-result_file-bad-auth_str", &[]);
            }
            let Some(output) = st.outputs.get(&result) else {
                // Not uploaded yet: what the server says of an unknown result.
                return recorded_reply("68-get_output-unknown-result", &[]);
            };
            let mut reply = recorded_reply("18-get_output-result_file", &[]);
            reply.body = output.clone();
            return reply;
        }
        let xml = req.xml();
        let command = xml[1..xml.find('>').unwrap()].to_owned();
        match command.as_str() {
            "ping" => recorded_reply("01-ping", &[]),
            "submit_batch" => {
                st.names = xml
                    .split("<name>")
                    .skip(1)
                    .map(|p| p.split("</name>").next().unwrap().to_owned())
                    .collect();
                recorded_reply("04-submit_batch-inline", &[])
            }
            "query_batch" => {
                st.query_batch += 1;
                let ex = if st.query_batch == 1 {
                    "07-query_batch-in-progress"
                } else {
                    "12-query_batch-done"
                };
                recorded_reply(ex, &subst(&st))
            }
            "query_job" if xml.contains("<job_id>58</job_id>") => {
                recorded_reply("10-query_job-done", &subst(&st))
            }
            "query_job" if xml.contains("<job_id>60</job_id>") => {
                // Exchange 10 for job 60, whose canonical instance is 65.
                let mut r = subst(&st);
                r.insert(0, ("rsA_012602_j0".into(), st.names[2].clone()));
                r.push(("<id>63</id>".into(), "<id>65</id>".into()));
                recorded_reply("10-query_job-done", &r)
            }
            "query_job" if xml.contains("<job_id>59</job_id>") => {
                recorded_reply("15-query_job-error", &subst(&st))
            }
            "query_completed_job" => recorded_reply("17-query_completed_job-error", &[]),
            "retire_batch" => recorded_reply("26-retire_batch", &[]),
            "abort_jobs" => recorded_reply("41-abort_jobs", &[]),
            other => panic!("unexpected {other}"),
        }
    }));
    let mut config = BoincConfig::remote(server.url(), AUTH, "probebatch");
    config.poll = Some(Duration::from_millis(100));
    let (sink, mut rx) = EventSink::channel();
    let mut backend = BoincBackend::new(config);
    backend.start(sink).unwrap();
    let dispatch = |key: u64, x: u64| Dispatch {
        key,
        task: double::task().entry(),
        input: wire::encode_payload(&x).into(),
        attempt: 0,
        resources: None,
        reattach: None,
    };
    backend
        .submit(vec![dispatch(1, 1), dispatch(2, 2), dispatch(3, 3)])
        .unwrap();
    // The outputs the "volunteers" return, once the names are known.
    let deadline = Instant::now() + Duration::from_secs(10);
    while state.lock().unwrap().names.len() < 3 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    {
        let mut st = state.lock().unwrap();
        for (i, x) in [(0usize, 2u64), (2, 6)] {
            let value = wire::encode_payload(&x);
            let mut out = Vec::new();
            wire::encode_output(
                &OutputBody {
                    task: double::NAME,
                    fingerprint: (double::task().entry().fingerprint)(),
                    outcome: Outcome::Ok(&value),
                    stats: WorkerStats::default(),
                },
                &mut out,
            );
            let result = format!("{}_0", st.names[i]);
            st.outputs.insert(result, out);
        }
    }
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while events
        .iter()
        .filter(|e| !matches!(e, Event::Started { .. } | Event::Queued { .. }))
        .count()
        < 3
    {
        assert!(Instant::now() < deadline, "{events:?}");
        match rx.try_recv() {
            Ok(b) => events.extend(b),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    let mut finished = HashMap::new();
    let mut started = Vec::new();
    let mut queued = HashMap::new();
    for e in &events {
        match e {
            Event::Queued { key, job_id } => {
                queued.insert(*key, job_id.clone());
            }
            Event::Started { key } => started.push(*key),
            Event::Finished {
                key,
                outcome: Ok(v),
                ..
            } => {
                finished.insert(*key, wire::decode_payload::<u64>(v).unwrap());
            }
            Event::Lost {
                key: 2,
                cause,
                stderr_tail,
            } => {
                assert!(
                    cause.contains("too_many_error_results, too_many_total_results"),
                    "{cause}"
                );
                assert!(
                    cause.contains("exit status of each failed result: 3, 3"),
                    "{cause}"
                );
                assert!(stderr_tail.contains("query_completed_job"), "{stderr_tail}");
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(started, [3], "j2 was in progress at the first poll");
    assert_eq!(finished, HashMap::from([(1, 2), (3, 6)]));
    // Queued with the batch id of the recorded reply and the job's name.
    let names = state.lock().unwrap().names.clone();
    assert_eq!(
        queued,
        (1..=3)
            .map(|k| (k, format!("boinc-remote 1 {}", names[k as usize - 1])))
            .collect::<HashMap<_, _>>()
    );

    // The submit carried one inline, armored envelope per job.
    let requests = server.requests();
    let submit = requests
        .iter()
        .find(|r| r.xml().starts_with("<submit_batch>"))
        .unwrap()
        .xml();
    assert!(submit.contains("<app_name>probebatch</app_name>"));
    for (i, name) in names.iter().enumerate() {
        assert!(submit.contains(&format!("<name>{name}</name>")));
        let src = submit
            .split("<source>")
            .nth(i + 1)
            .unwrap()
            .split("</source>")
            .next()
            .unwrap();
        let envelope = pymw_boinc::armor::dearmor(src.as_bytes(), 1 << 20).unwrap();
        let body = wire::decode_input(&envelope).unwrap();
        assert_eq!(body.task, double::NAME);
        assert_eq!(
            wire::decode_payload::<u64>(body.payload).unwrap(),
            i as u64 + 1
        );
    }
    assert!(submit.contains(&format!(
        "<command_line>__pymw boinc-run --task {}</command_line>",
        double::NAME
    )));
    let wait_for = |what: &str, f: &dyn Fn(&[Request]) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f(&server.requests()) {
            assert!(Instant::now() < deadline, "no {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for("retire_batch", &|r| {
        r.iter().any(|r| r.xml().starts_with("<retire_batch>"))
    });

    // Cancel sends abort_jobs for the job.
    backend.submit(vec![dispatch(4, 4)]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while state.lock().unwrap().names.len() != 1 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    backend.cancel(&[4]);
    let name = state.lock().unwrap().names[0].clone();
    wait_for("abort_jobs", &|r| {
        r.iter().any(|r| r.xml().starts_with("<abort_jobs>"))
    });
    let abort = server
        .requests()
        .into_iter()
        .find(|r| r.xml().starts_with("<abort_jobs>"))
        .unwrap();
    assert_eq!(
        abort.xml(),
        remote::abort_jobs_request(AUTH, &[name]).unwrap()
    );
    backend.shutdown();
}

/// Remote mode across master lives: a master of a resumable run is killed
/// with a batch in flight; the next master of the run gets the attempts
/// back with their job ids and new keys, follows the jobs of that batch
/// (the one that finished while no master was alive, the running one),
/// submits again only the attempts whose job the server does not know,
/// and retires the earlier batch once it followed every job of it.
#[test]
fn remote_mode_follows_the_jobs_of_a_killed_master() {
    #[derive(Default)]
    struct State {
        /// Job names of each batch submitted, batch id = index + 1.
        batches: Vec<Vec<String>>,
        /// The recorded `query_batch` reply batch 1 gets.
        batch1: &'static str,
        outputs: HashMap<String, Vec<u8>>,
    }
    let state = Arc::new(Mutex::new(State {
        batch1: "06-query_batch-queued",
        ..State::default()
    }));
    let s = state.clone();
    let server = Server::start(Arc::new(move |req: &Request| {
        let mut st = s.lock().unwrap();
        let subst = recorded_names;
        if req.method == "GET" && req.target.contains("result.php?resultid=") {
            // The public task page, read for a failed job's stderr since
            // query_completed_job fails (17): one without a stderr section.
            return recorded_reply("68-get_output-unknown-result", &[]);
        }
        if req.method == "GET" {
            let result = result_name(&req.target);
            let Some(output) = st.outputs.get(&result) else {
                return recorded_reply("68-get_output-unknown-result", &[]);
            };
            let mut reply = recorded_reply("18-get_output-result_file", &[]);
            reply.body = output.clone();
            return reply;
        }
        let xml = req.xml();
        let command = xml[1..xml.find('>').unwrap()].to_owned();
        let batch_id = || -> usize {
            xml.split("<batch_id>")
                .nth(1)
                .unwrap()
                .split('<')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        match command.as_str() {
            "ping" => recorded_reply("01-ping", &[]),
            "submit_batch" => {
                st.batches.push(
                    xml.split("<name>")
                        .skip(1)
                        .map(|p| p.split("</name>").next().unwrap().to_owned())
                        .collect(),
                );
                let id = st.batches.len();
                recorded_reply(
                    "04-submit_batch-inline",
                    &[(
                        "<batch_id>1</batch_id>".into(),
                        format!("<batch_id>{id}</batch_id>"),
                    )],
                )
            }
            "query_batch" => match batch_id() {
                1 => recorded_reply(st.batch1, &subst(&st.batches[0])),
                2 => recorded_reply("06-query_batch-queued", &subst(&st.batches[1])),
                _ => recorded_reply("59-error-no-such-batch", &[]),
            },
            "query_job" if xml.contains("<job_id>58</job_id>") => {
                recorded_reply("10-query_job-done", &subst(&st.batches[0]))
            }
            "query_job" if xml.contains("<job_id>60</job_id>") => {
                let mut r = subst(&st.batches[0]);
                r.insert(0, ("rsA_012602_j0".into(), st.batches[0][2].clone()));
                r.push(("<id>63</id>".into(), "<id>65</id>".into()));
                recorded_reply("10-query_job-done", &r)
            }
            "retire_batch" => recorded_reply("26-retire_batch", &[]),
            "abort_jobs" => recorded_reply("41-abort_jobs", &[]),
            other => panic!("unexpected {other}"),
        }
    }));
    let dispatch = |key: u64, x: u64, reattach: Option<String>| Dispatch {
        key,
        task: double::task().entry(),
        input: wire::encode_payload(&x).into(),
        attempt: 0,
        resources: None,
        reattach,
    };
    let collect = |rx: &mut tokio::sync::mpsc::UnboundedReceiver<Vec<Event>>,
                   done: &dyn Fn(&[Event]) -> bool| {
        let mut events = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done(&events) {
            assert!(Instant::now() < deadline, "{events:?}");
            match rx.try_recv() {
                Ok(b) => events.extend(b),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        events
    };
    let queued = |events: &[Event]| -> HashMap<u64, String> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Queued { key, job_id } => Some((*key, job_id.clone())),
                _ => None,
            })
            .collect()
    };

    // The first master polls once an hour: once "killed", it asks nothing.
    let mut config = BoincConfig::remote(server.url(), AUTH, "probebatch");
    config.poll = Some(Duration::from_secs(3600));
    let (sink, mut rx) = EventSink::channel();
    let mut first = BoincBackend::new(config);
    first.resumable("sweep");
    first.start(sink).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    first
        .submit(vec![
            dispatch(1, 1, None),
            dispatch(2, 2, None),
            dispatch(3, 3, None),
        ])
        .unwrap();
    let events = collect(&mut rx, &|e| e.len() >= 3);
    let job_ids = queued(&events);
    let names = state.lock().unwrap().batches[0].clone();
    for (k, name) in names.iter().enumerate() {
        assert!(name.starts_with("pymw_sweepr"), "{name}");
        assert_eq!(job_ids[&(k as u64 + 1)], format!("boinc-remote 1 {name}"));
    }
    // Killed: no shutdown, so no abort.
    std::mem::forget(first);
    drop(rx);

    // While no master is alive j0 is done (its output uploaded) and j2 runs.
    let output = |x: u64| {
        let value = wire::encode_payload(&(x * 2));
        let mut out = Vec::new();
        wire::encode_output(
            &OutputBody {
                task: double::NAME,
                fingerprint: (double::task().entry().fingerprint)(),
                outcome: Outcome::Ok(&value),
                stats: WorkerStats::default(),
            },
            &mut out,
        );
        out
    };
    {
        let mut st = state.lock().unwrap();
        st.batch1 = "07-query_batch-in-progress";
        st.outputs.insert(format!("{}_0", names[0]), output(1));
    }

    let mut config = BoincConfig::remote(server.url(), AUTH, "probebatch");
    config.poll = Some(Duration::from_millis(100));
    let (sink, mut rx) = EventSink::channel();
    let mut second = BoincBackend::new(config);
    second.resumable("sweep");
    second.start(sink).unwrap();
    second
        .submit(vec![
            dispatch(11, 1, Some(job_ids[&1].clone())),
            dispatch(12, 2, Some(job_ids[&2].clone())),
            dispatch(13, 3, Some(job_ids[&3].clone())),
            // A job its batch does not list, a batch the server does not know.
            dispatch(14, 4, Some(format!("boinc-remote 1 {}f", names[0]))),
            dispatch(15, 5, Some("boinc-remote 999999 pymw_sweepr1_1".into())),
        ])
        .unwrap();
    let events = collect(&mut rx, &|e| {
        queued(e).len() == 5
            && e.iter()
                .any(|e| matches!(e, Event::Finished { key: 11, .. }))
            && e.iter().any(|e| matches!(e, Event::Started { key: 13 }))
    });
    let second_ids = queued(&events);
    for k in 1..=3 {
        assert_eq!(
            second_ids[&(k + 10)],
            job_ids[&k],
            "followed under the new key"
        );
    }
    let batches = state.lock().unwrap().batches.clone();
    assert_eq!(batches.len(), 2, "one more submit_batch: {batches:?}");
    assert_eq!(batches[1].len(), 2, "{batches:?}");
    for (name, key) in batches[1].iter().zip([14, 15]) {
        assert!(!names.contains(name));
        let (_, k) = pymw_boinc::spool::parse_wu_name(name).unwrap();
        assert_eq!(k, key);
        assert_eq!(second_ids[&key], format!("boinc-remote 2 {name}"));
    }
    match events
        .iter()
        .find(|e| matches!(e, Event::Finished { key: 11, .. }))
    {
        Some(Event::Finished { outcome: Ok(v), .. }) => {
            assert_eq!(wire::decode_payload::<u64>(v).unwrap(), 2)
        }
        other => panic!("{other:?}"),
    }

    // Cancelling a followed attempt aborts the earlier master's job.
    second.cancel(&[12]);
    let wait_for = |what: &str, f: &dyn Fn(&[Request]) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f(&server.requests()) {
            assert!(Instant::now() < deadline, "no {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for("abort_jobs", &|r| {
        r.iter().any(|r| r.xml().starts_with("<abort_jobs>"))
    });
    let abort = server
        .requests()
        .into_iter()
        .find(|r| r.xml().starts_with("<abort_jobs>"))
        .unwrap();
    assert_eq!(
        abort.xml(),
        remote::abort_jobs_request(AUTH, std::slice::from_ref(&names[1])).unwrap()
    );

    // j2 ends: reported under its new key; every job of batch 1 was
    // followed to its end, so the batch is retired.
    {
        let mut st = state.lock().unwrap();
        st.batch1 = "12-query_batch-done";
        st.outputs.insert(format!("{}_0", names[2]), output(3));
    }
    let events = collect(&mut rx, &|e| {
        e.iter()
            .any(|e| matches!(e, Event::Finished { key: 13, .. }))
    });
    for e in &events {
        match e {
            Event::Finished {
                key: 13,
                outcome: Ok(v),
                ..
            } => assert_eq!(wire::decode_payload::<u64>(v).unwrap(), 6),
            Event::Started { key: 13 } => {}
            other => panic!("nothing about the cancelled job: {other:?}"),
        }
    }
    wait_for("retire_batch", &|r| {
        r.iter().any(|r| r.xml().starts_with("<retire_batch>"))
    });
    let retired: Vec<String> = server
        .requests()
        .iter()
        .map(Request::xml)
        .filter(|x| x.starts_with("<retire_batch>"))
        .collect();
    assert_eq!(retired, [remote::retire_batch_request(AUTH, 1).unwrap()]);

    // A clean shutdown with 14 and 15 in flight leaves them for the next
    // master: no abort.
    let aborts = |r: &[Request]| {
        r.iter()
            .filter(|r| r.xml().starts_with("<abort_jobs>"))
            .count()
    };
    let before = aborts(&server.requests());
    second.shutdown();
    assert_eq!(aborts(&server.requests()), before);
}

/// The `result_name` parameter of a `get_output.php` request.
fn result_name(target: &str) -> String {
    let query = target.split("result_name=").nth(1).expect("a result name");
    query.split('&').next().unwrap_or_default().to_owned()
}

/// Replaces the recorded job names (`rsA_012602_j0`, ...) by these.
fn recorded_names(names: &[String]) -> Vec<(String, String)> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("rsA_012602_j{i}"), n.clone()))
        .collect()
}

/// Remote mode started from async code (the async master inside
/// `#[tokio::main]`): the backend's start checks the authenticator without
/// blocking on a runtime in the caller's thread, which would panic there.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn remote_mode_starts_inside_a_runtime() {
    let server = Server::start(Arc::new(|req: &Request| {
        let xml = req.xml();
        match &xml[1..xml.find('>').unwrap()] {
            "ping" => recorded_reply("01-ping", &[]),
            "abort_jobs" => recorded_reply("41-abort_jobs", &[]),
            other => panic!("unexpected {other}"),
        }
    }));
    let (sink, _rx) = EventSink::channel();
    let mut backend = BoincBackend::new(BoincConfig::remote(server.url(), AUTH, "probebatch"));
    backend.start(sink).unwrap();
    backend.shutdown();

    // A refused authenticator is still an error of `start`, not a panic.
    let refusing = Server::start(Arc::new(|_: &Request| {
        recorded_reply("51-error-wrong-authenticator", &[])
    }));
    let (sink, _rx) = EventSink::channel();
    let mut backend = BoincBackend::new(BoincConfig::remote(refusing.url(), AUTH, "probebatch"));
    let error = backend.start(sink).unwrap_err().to_string();
    assert!(
        error.contains("did not accept the authenticator"),
        "{error}"
    );
}
