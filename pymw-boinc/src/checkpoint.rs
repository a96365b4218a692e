//! Checkpoints and progress for long tasks running under BOINC.
//!
//! A BOINC client stops and restarts tasks (when the computer is needed,
//! when the client restarts, when a task is preempted by another project);
//! a restarted task begins again from the start unless it saved its state.
//! Inside a task:
//!
//! ```no_run
//! # #[derive(serde::Serialize, serde::Deserialize, Default)] struct State { i: u64, sum: f64 }
//! # fn step(s: &mut State) { s.i += 1 }
//! let mut state: State = pymw_boinc::checkpoint::load().unwrap_or_default();
//! while state.i < 1_000_000 {
//!     step(&mut state);
//!     pymw_boinc::checkpoint::fraction_done(state.i as f64 / 1e6);
//!     if pymw_boinc::checkpoint::due() {
//!         pymw_boinc::checkpoint::save(&state).expect("checkpoint");
//!     }
//! }
//! ```
//!
//! Outside BOINC (local or HTCondor backends, a task run by hand) every
//! function is a cheap no-op: [`load`] returns `None`, [`save`] returns
//! `Ok(false)`, [`due`] returns `false`.
//!
//! Under BOINC the `boinc-run` role starts the task in a child process with
//! the slot directory, result name and checkpoint period of `init_data.xml`
//! in the environment. [`save`] writes the state (postcard) to
//! `pymw_checkpoint` in the slot directory, atomically (temporary name, then
//! rename), tagged with the result name so that a stale file is never read
//! for another task. The slot survives a restart (recorded:
//! `exit-behaviour/d3-sigkill-first-run-restart-with-checkpoint`, where the
//! second run read the first run's file). The role notices the new
//! checkpoint and reports its CPU time as `<checkpoint_cpu_time>`, which
//! tells the client that the work so far is safe (it then also resets its
//! count of premature exits).

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Environment variable: the slot directory (set by the `boinc-run` role).
pub const SLOT_ENV: &str = "PYMW_BOINC_SLOT";
/// Environment variable: the result name.
pub const RESULT_ENV: &str = "PYMW_BOINC_RESULT";
/// Environment variable: seconds between checkpoints (`init_data.xml`'s
/// `<checkpoint_period>`).
pub const PERIOD_ENV: &str = "PYMW_BOINC_CHECKPOINT_PERIOD";
/// The checkpoint file in the slot directory.
pub const CHECKPOINT_FILE: &str = "pymw_checkpoint";
/// The progress file in the slot directory.
pub const FRACTION_FILE: &str = "pymw_fraction_done";

const MAGIC: &[u8; 8] = b"PYMWCKP1";
/// The checkpoint period when none is given: BOINC's default, 300 s.
const DEFAULT_PERIOD: Duration = Duration::from_secs(300);

struct Context {
    slot: PathBuf,
    result: String,
    period: Duration,
}

fn context() -> Option<&'static Context> {
    static CONTEXT: std::sync::OnceLock<Option<Context>> = std::sync::OnceLock::new();
    CONTEXT
        .get_or_init(|| {
            let slot = PathBuf::from(std::env::var_os(SLOT_ENV)?);
            let result = std::env::var(RESULT_ENV).unwrap_or_default();
            let period = std::env::var(PERIOD_ENV)
                .ok()
                .and_then(|p| p.trim().parse::<f64>().ok())
                .filter(|p| p.is_finite() && *p >= 0.0)
                .map_or(DEFAULT_PERIOD, Duration::from_secs_f64);
            Some(Context {
                slot,
                result,
                period,
            })
        })
        .as_ref()
}

fn last_save() -> &'static Mutex<Instant> {
    static LAST: std::sync::OnceLock<Mutex<Instant>> = std::sync::OnceLock::new();
    LAST.get_or_init(|| Mutex::new(Instant::now()))
}

/// Whether the task runs under BOINC (checkpoints are kept).
pub fn active() -> bool {
    context().is_some()
}

/// Whether a checkpoint is due: the client's checkpoint period has passed
/// since the last [`save`] (or since the task started). Always `false`
/// outside BOINC.
pub fn due() -> bool {
    let Some(ctx) = context() else { return false };
    let last = last_save().lock().unwrap_or_else(|p| p.into_inner());
    last.elapsed() >= ctx.period
}

/// The state saved by the last [`save`] of this task, if any. A missing,
/// foreign (another result's), corrupt or undecodable checkpoint gives
/// `None` (and a line on stderr for the last two).
pub fn load<T: DeserializeOwned>() -> Option<T> {
    let ctx = context()?;
    // Start the period now, so that `due` counts from the restart.
    let _ = last_save();
    let path = ctx.slot.join(CHECKPOINT_FILE);
    let bytes = match pymw_core::wire::read_envelope_file(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            eprintln!("pymw: checkpoint {} unreadable: {e}", path.display());
            return None;
        }
    };
    match decode(&bytes, &ctx.result) {
        Ok(Some(payload)) => match pymw_core::wire::decode_payload::<T>(payload) {
            Ok(value) => Some(value),
            Err(e) => {
                eprintln!("pymw: checkpoint does not decode as the expected state: {e}");
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            eprintln!("pymw: checkpoint {} ignored: {e}", path.display());
            None
        }
    }
}

/// Saves `value` as this task's checkpoint. Returns `Ok(false)` outside
/// BOINC (nothing is written).
pub fn save<T: Serialize>(value: &T) -> std::io::Result<bool> {
    let Some(ctx) = context() else {
        return Ok(false);
    };
    let payload = pymw_core::wire::encode_payload(value);
    let bytes = encode(&ctx.result, &payload);
    write_atomically(&ctx.slot.join(CHECKPOINT_FILE), &bytes)?;
    *last_save().lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    Ok(true)
}

/// Reports the task's fraction done (0 to 1) to the client. Cheap to call
/// often: the file is written at most once a second.
pub fn fraction_done(fraction: f64) {
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    let Some(ctx) = context() else { return };
    if !fraction.is_finite() {
        return;
    }
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
        return;
    }
    *last = Some(Instant::now());
    let text = format!("{}\n", fraction.clamp(0.0, 1.0));
    let _ = write_atomically(&ctx.slot.join(FRACTION_FILE), text.as_bytes());
}

/// `MAGIC | u32 name length | name | u64 payload length | payload | u64 hash`.
fn encode(result: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + result.len() + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(result.len() as u32).to_le_bytes());
    out.extend_from_slice(result.as_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(payload);
    let hash = pymw_core::registry::stable_hash(&[&out]);
    out.extend_from_slice(&hash.to_le_bytes());
    out
}

/// The payload, `Ok(None)` for another result's checkpoint.
fn decode<'a>(bytes: &'a [u8], result: &str) -> Result<Option<&'a [u8]>, String> {
    let body_len = bytes.len().checked_sub(8).ok_or("truncated")?;
    let (body, hash) = bytes.split_at(body_len);
    let hash = u64::from_le_bytes(hash.try_into().map_err(|_| "truncated")?);
    if !body.starts_with(MAGIC) {
        return Err("not a pymw checkpoint".to_owned());
    }
    if pymw_core::registry::stable_hash(&[body]) != hash {
        return Err("checksum mismatch".to_owned());
    }
    let rest = &body[MAGIC.len()..];
    let name_len = u32::from_le_bytes(
        rest.get(..4)
            .ok_or("truncated")?
            .try_into()
            .map_err(|_| "truncated")?,
    ) as usize;
    let rest = &rest[4..];
    let name = rest.get(..name_len).ok_or("truncated")?;
    let rest = &rest[name_len..];
    let len = u64::from_le_bytes(
        rest.get(..8)
            .ok_or("truncated")?
            .try_into()
            .map_err(|_| "truncated")?,
    );
    let payload = &rest[8..];
    if payload.len() as u64 != len {
        return Err("length mismatch".to_owned());
    }
    Ok((name == result.as_bytes()).then_some(payload))
}

fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// The fraction written by [`fraction_done`] in `slot`, if any.
pub(crate) fn read_fraction(slot: &std::path::Path) -> Option<f64> {
    let text = std::fs::read_to_string(slot.join(FRACTION_FILE)).ok()?;
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(|f| f.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding() {
        let bytes = encode("r_0", b"abc");
        assert_eq!(decode(&bytes, "r_0").unwrap(), Some(&b"abc"[..]));
        assert_eq!(decode(&bytes, "other").unwrap(), None);
        let mut bad = bytes.clone();
        bad[14] ^= 1;
        assert!(decode(&bad, "r_0").is_err());
        assert!(decode(&bytes[..5], "r_0").is_err());
        assert!(decode(b"", "r_0").is_err());
        // Outside BOINC everything is a no-op.
        assert!(!active());
        assert!(!due());
        assert!(!save(&1u32).unwrap());
        assert_eq!(load::<u32>(), None);
    }
}
