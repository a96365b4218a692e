//! Input (workunit) and result templates, rendered in the exact layout of the
//! templates that worked with `bin/create_work` 7.20.5
//! (`templates/project-templates/`).
//!
//! Rules observed with them:
//! - Each `<file_info>` of the input template takes one input file name from
//!   the `create_work` command line (or job line), in order; the count must
//!   match exactly.
//! - Values in the template's `<workunit>` win over the same `create_work`
//!   options (`--max_total_results 1` was ignored when the template said 2),
//!   so the template is where redundancy and bounds belong.
//! - `create_work --appname X` uses `templates/X_in` and `templates/X_out`
//!   when no template is named; template paths are relative to the project
//!   directory.
//! - Output physical names are generated as `<result name>_r<random>_<i>` from
//!   `<OUTFILE_i/>`, and `<UPLOAD_URL/>` becomes the project's upload handler.
//! - Without `max_*` elements (`rustworker_in`) `create_work` uses its
//!   defaults.
//! - `file_deleter` deletes an input after the first job using it is
//!   assimilated: inputs shared by several jobs need distinct names per job
//!   or `<no_delete/>` ([`InputFile::no_delete`], not exercised in the lab).
//! - Quorum: with `min_quorum` 2 a result is canonical once `min_quorum/2+1`
//!   results agree (2 of 2 in the lab); both replicas may go to the same host
//!   unless the project sets `one_result_per_host_per_wu`.

use std::fmt::Write as _;

use crate::xml::escape_text;

/// One input file of the workunit template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    /// Logical name the app opens (`in`).
    pub open_name: String,
    /// Put a real copy in the slot instead of a soft-link file.
    pub copy_file: bool,
    /// `<sticky/>`: the client keeps the file after the job (not exercised in
    /// the lab).
    pub sticky: bool,
    /// `<no_delete/>`: `file_deleter` leaves the file on the server (not
    /// exercised in the lab).
    pub no_delete: bool,
}

impl InputFile {
    /// An input opened as `open_name`, through a soft-link file.
    pub fn new(open_name: impl Into<String>) -> Self {
        InputFile {
            open_name: open_name.into(),
            copy_file: false,
            sticky: false,
            no_delete: false,
        }
    }
}

/// One output file of the result template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    /// Logical name the app writes (`out`).
    pub open_name: String,
    /// The app writes a real file in the slot (it must create it itself).
    pub copy_file: bool,
    /// Largest upload accepted, in bytes (10000000 in the lab).
    pub max_nbytes: u64,
}

impl OutputFile {
    /// An output written as `open_name`, at most 10 MB, through a soft link.
    pub fn new(open_name: impl Into<String>) -> Self {
        OutputFile {
            open_name: open_name.into(),
            copy_file: false,
            max_nbytes: 10_000_000,
        }
    }
}

/// Redundancy and resource bounds in `<workunit>`.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkunitParams {
    /// Results created at first.
    pub target_nresults: u32,
    /// Agreeing results needed for a canonical one.
    pub min_quorum: u32,
    /// Error results after which the job fails (`None`: `create_work`'s
    /// default).
    pub max_error_results: Option<u32>,
    /// Results after which the job fails.
    pub max_total_results: Option<u32>,
    /// Successful but disagreeing results after which the job fails.
    pub max_success_results: Option<u32>,
    /// Estimated floating-point operations.
    pub rsc_fpops_est: f64,
    /// Bound beyond which the client aborts the task.
    pub rsc_fpops_bound: f64,
    /// Working-set bound in bytes.
    pub rsc_memory_bound: u64,
    /// Disk bound in bytes.
    pub rsc_disk_bound: u64,
    /// Seconds a host has to return a result.
    pub delay_bound: u64,
}

impl Default for WorkunitParams {
    /// The values of the lab's `probe_in`: one result, one error allowed,
    /// two results in total, 1e9 fpops estimated, 1e13 bound, 100 MB memory
    /// and disk, one hour deadline.
    fn default() -> Self {
        WorkunitParams {
            target_nresults: 1,
            min_quorum: 1,
            max_error_results: Some(1),
            max_total_results: Some(2),
            max_success_results: Some(1),
            rsc_fpops_est: 1e9,
            rsc_fpops_bound: 1e13,
            rsc_memory_bound: 100_000_000,
            rsc_disk_bound: 100_000_000,
            delay_bound: 3600,
        }
    }
}

/// A workunit (input) template.
#[derive(Debug, Clone, PartialEq)]
pub struct InputTemplate {
    /// Input files, in the order `create_work` takes their names.
    pub files: Vec<InputFile>,
    /// Redundancy and bounds.
    pub workunit: WorkunitParams,
}

impl InputTemplate {
    /// The template text.
    pub fn render(&self) -> String {
        let mut s = String::from("<input_template>\n");
        for (i, f) in self.files.iter().enumerate() {
            s.push_str("    <file_info>\n");
            let _ = writeln!(s, "        <number>{i}</number>");
            if f.sticky {
                s.push_str("        <sticky/>\n");
            }
            if f.no_delete {
                s.push_str("        <no_delete/>\n");
            }
            s.push_str("    </file_info>\n");
        }
        s.push_str("    <workunit>\n");
        for (i, f) in self.files.iter().enumerate() {
            s.push_str("        <file_ref>\n");
            let _ = writeln!(s, "            <file_number>{i}</file_number>");
            let _ = writeln!(
                s,
                "            <open_name>{}</open_name>",
                escape_text(&f.open_name)
            );
            if f.copy_file {
                s.push_str("            <copy_file/>\n");
            }
            s.push_str("        </file_ref>\n");
        }
        let w = &self.workunit;
        let mut line = |tag: &str, value: String| {
            let _ = writeln!(s, "        <{tag}>{value}</{tag}>");
        };
        line("target_nresults", w.target_nresults.to_string());
        line("min_quorum", w.min_quorum.to_string());
        if let Some(v) = w.max_error_results {
            line("max_error_results", v.to_string());
        }
        if let Some(v) = w.max_total_results {
            line("max_total_results", v.to_string());
        }
        if let Some(v) = w.max_success_results {
            line("max_success_results", v.to_string());
        }
        line("rsc_fpops_est", format_float(w.rsc_fpops_est));
        line("rsc_fpops_bound", format_float(w.rsc_fpops_bound));
        line("rsc_memory_bound", w.rsc_memory_bound.to_string());
        line("rsc_disk_bound", w.rsc_disk_bound.to_string());
        line("delay_bound", w.delay_bound.to_string());
        s.push_str("    </workunit>\n</input_template>\n");
        s
    }
}

/// A result (output) template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputTemplate {
    /// Output files; the i-th gets the physical name `<OUTFILE_i/>`.
    pub files: Vec<OutputFile>,
}

impl OutputTemplate {
    /// The template text.
    pub fn render(&self) -> String {
        let mut s = String::from("<output_template>\n");
        for (i, f) in self.files.iter().enumerate() {
            s.push_str("    <file_info>\n");
            let _ = writeln!(s, "        <name><OUTFILE_{i}/></name>");
            s.push_str("        <generated_locally/>\n");
            s.push_str("        <upload_when_present/>\n");
            let _ = writeln!(s, "        <max_nbytes>{}</max_nbytes>", f.max_nbytes);
            s.push_str("        <url><UPLOAD_URL/></url>\n");
            s.push_str("    </file_info>\n");
        }
        s.push_str("    <result>\n");
        for (i, f) in self.files.iter().enumerate() {
            s.push_str("        <file_ref>\n");
            let _ = writeln!(s, "            <file_name><OUTFILE_{i}/></file_name>");
            let _ = writeln!(
                s,
                "            <open_name>{}</open_name>",
                escape_text(&f.open_name)
            );
            if f.copy_file {
                s.push_str("            <copy_file/>\n");
            }
            s.push_str("        </file_ref>\n");
        }
        s.push_str("    </result>\n</output_template>\n");
        s
    }
}

/// The default template paths `create_work --appname APP` uses:
/// `templates/APP_in` and `templates/APP_out` (relative to the project).
pub fn default_template_paths(app: &str) -> (String, String) {
    (
        format!("templates/{app}_in"),
        format!("templates/{app}_out"),
    )
}

/// Floating-point values as the lab wrote them: `1e9`, `1e13`, `2.5e9`.
/// Rust's shortest exponent form is read back exactly by BOINC's `atof`.
fn format_float(x: f64) -> String {
    let x = if x.is_finite() { x } else { 0.0 };
    format!("{x:e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_and_flags() {
        assert_eq!(format_float(1e9), "1e9");
        assert_eq!(format_float(2.5e9), "2.5e9");
        assert_eq!(format_float(f64::INFINITY), "0e0");
        let t = InputTemplate {
            files: vec![InputFile {
                sticky: true,
                no_delete: true,
                ..InputFile::new("a<b")
            }],
            workunit: WorkunitParams::default(),
        };
        let s = t.render();
        assert!(s.contains("        <sticky/>\n        <no_delete/>\n    </file_info>"));
        assert!(s.contains("<open_name>a&lt;b</open_name>"));
        assert_eq!(
            default_template_paths("probe"),
            ("templates/probe_in".into(), "templates/probe_out".into())
        );
    }
}
