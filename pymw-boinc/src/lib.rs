//! The BOINC backend of pymw: the same binary is the master, the app the
//! volunteers' BOINC clients run, and the project's validator and
//! assimilator.
//!
//! - [`BoincBackend`] (options: [`BoincArgs`]) runs attempts as BOINC jobs,
//!   either on the project's server ([`project`]: app version install,
//!   templates, staging, `create_work --stdin` batches, a follower of what
//!   the assimilator returns) or from anywhere through remote job
//!   submission ([`client`], over HTTP or HTTPS).
//! - The roles of the binary ([`ROLES`], which the `pymw` facade's `init`
//!   passes to `pymw_core::worker::init_with`): `__pymw boinc-run` is what the BOINC client
//!   starts ([`app`]); `boinc-validate-init` and `boinc-validate-compare`
//!   check and compare replicas for `script_validator` ([`validate`]);
//!   `boinc-assimilate` returns outputs and failures for
//!   `script_assimilator` ([`assimilate`]).
//! - [`reaper`]: the run directories and work units of masters that died,
//!   and the outputs held for remote submitters until their batch is retired.
//! - [`checkpoint`]: checkpoints and progress for long tasks.
//! - [`job_id`]: the job ids reported for every work unit, with which the
//!   next master of a resumable run follows the work units of one that
//!   died instead of creating them again (see [`BoincBackend`]).
//!
//! The format layer below is pure code or plain file-system code, written
//! against formats recorded from a real BOINC 7.20.5 project server and
//! Debian `boinc-client` 7.20.5 (the `shared/fixtures/boinc` recordings):
//!
//! - [`slot`]: the worker side of the app protocol without the BOINC library:
//!   logical file names in the slot directory, `init_data.xml`, and the
//!   `boinc_finish_called` file that makes an exit 0 count as success.
//! - [`shmem`]: the shared-memory message channels (progress, CPU time,
//!   suspend/resume/quit/abort) between the client and the app.
//! - [`templates`]: input (workunit) and result templates.
//! - [`create_work`]: `bin/create_work --stdin` command line, job lines and
//!   error output; the download hierarchy.
//! - [`app_version`]: `apps/APP/VERSION/PLATFORM/`, `version.xml`, content
//!   hashed physical names, `update_versions` output.
//! - [`daemons`]: `script_assimilator` / `script_validator` argv, the
//!   `config.xml` `<daemon>` entries that register a pymw binary in those
//!   roles, and the workunit `error_mask`.
//! - [`remote`]: remote job submission (`submit_rpc_handler.php`) request
//!   bodies and reply parsers, and `get_output.php` URLs.
//!
//! # Facts from the recordings that this crate relies on
//!
//! - A job's outcome on the client is decided by how the app exits: exit 0 is
//!   a success only if the app first wrote `boinc_finish_called` (content
//!   `0\n`) in its slot; without it the client restarts the app in the same
//!   slot about once a second and gives up after 100 such exits
//!   (`exit_status` -226). A nonzero exit code becomes `exit_status` as is
//!   (a Rust panic is 101) and is an immediate error; SIGKILL/SIGTERM/SIGINT/
//!   SIGQUIT/SIGHUP are "killed from outside": the task is restarted in the
//!   same slot (files written before are still there, which is how a
//!   checkpoint survives).
//! - The app's stderr comes back in `result.stderr_out`, wrapped as
//!   `<core_client_version>..</core_client_version>` + CDATA + optional
//!   `<message>` + `<stderr_txt>` holding only the last 63 KB (64512 bytes)
//!   of `stderr.txt`; stdout is `/dev/null`.
//! - A non-API app is never stopped promptly by an abort: after a user abort
//!   the client kills it 60 s later; after a project abort (`abort_jobs`,
//!   `abort_batch`) the processes were not killed at all and their outputs
//!   were ignored.
//! - Every server reply is HTTP 200, errors included; errors are in the body.
//! - `file_deleter` removes uploads and inputs about 2 s after assimilation,
//!   and a staged input shared by several jobs after the first of them is
//!   assimilated: give each job its own input names (or `no_delete`).
//! - One job takes about 18-24 s from `create_work` to assimilated output on
//!   the local lab with fast settings (20 jobs: about 40 s); the client's 1 s
//!   poll and about 2 s per HTTP transfer dominate, not the server.

pub mod app;
pub mod app_version;
pub mod armor;
pub mod assimilate;
mod backend;
pub mod checkpoint;
pub mod client;
pub mod create_work;
pub mod daemons;
pub mod db;
mod events;
pub mod job_id;
pub mod project;
pub mod project_config;
pub mod reaper;
pub mod remote;
mod remote_engine;
pub mod shmem;
pub mod slot;
pub mod spool;
pub mod templates;
pub mod validate;

mod hex;
mod xml;

pub use backend::{BoincArgs, BoincBackend, BoincConfig, BoincMode, parse_duration, this_platform};
pub use daemons::{WuErrorMask, WuErrorReason};
pub use remote_engine::RemoteSettings;

use pymw_core::worker::RoleEntry;

/// The roles BOINC adds to the binary: the app the client runs, the
/// assimilator and validator scripts the daemons call, and the installer.
/// The `pymw` facade's `init` passes them to `pymw_core::worker::init_with`:
/// naming them there (rather than registering them through `inventory`) keeps
/// the linker from leaving this crate's roles out of a binary.
pub static ROLES: [RoleEntry; 6] = [
    RoleEntry {
        name: app::ROLE,
        about: "run a task as a BOINC app (the BOINC client starts this)",
        run: app::run_role,
    },
    RoleEntry {
        name: "boinc-assimilate",
        about: "return a finished BOINC job to its master (script_assimilator)",
        run: assimilate::role,
    },
    RoleEntry {
        name: "boinc-validate-init",
        about: "check one BOINC result (script_validator --init_script)",
        run: validate::init_role,
    },
    RoleEntry {
        name: "boinc-validate-compare",
        about: "compare two BOINC results (script_validator --compare_script)",
        run: validate::compare_role,
    },
    RoleEntry {
        name: project::INSTALL_ROLE,
        about: "install this binary as a BOINC app on the project server (--boinc-project DIR)",
        run: project::install_role,
    },
    RoleEntry {
        name: reaper::ROLE,
        about: "cancel the work units of dead project-host masters and remove their run directories",
        run: reaper::role,
    },
];
