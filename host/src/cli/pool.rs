//! `mpwasm pool`: JSON lines in, one result per line out.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use mpwasm::{Codec, Error, Pool, TaskError};

use super::json_lines::LineError;

/// Map a guest task over JSON lines, in parallel worker processes.
///
/// Reads one JSON value per line (from standard input, or --input) and writes
/// one JSON result per line to standard output: in input order, or in
/// completion order with --unordered. A task that takes several arguments
/// reads each line as a JSON array of them.
///
/// Each result is written as one compact JSON line, whatever the guest
/// returned. A failed input writes an object in its place, e.g.
/// {"error":"panic: bad input 3","kind":"panic","index":3}, and makes the
/// exit status 1; the other inputs are still processed. Indices count input
/// lines from 0. Only failures are objects with an "error" key: a result
/// that is one (or whose only key is "result") is written as
/// {"result":VALUE}. A result that is not one valid JSON value fails its
/// input with kind bad_output.
///
/// Guests' own stdout and stderr go to standard error, so standard output
/// carries only results.
///
/// Example:
///
///   seq 1 5 | mpwasm pool pool_square.wasm --task square -j 4
#[derive(Args)]
pub(crate) struct PoolCommand {
    /// The guest: a .wasm core module or component
    guest: PathBuf,

    /// Task to run [default: the guest's only task]
    #[arg(long, short = 't', value_name = "NAME")]
    task: Option<String>,

    /// Number of worker processes [default: number of CPUs]
    #[arg(long, short = 'j', value_name = "N")]
    processes: Option<usize>,

    /// Inputs sent to a worker at a time [default: 1, doubling up to 4096]
    #[arg(long, value_name = "N")]
    chunksize: Option<usize>,

    /// Write results as they complete instead of in input order
    #[arg(long)]
    unordered: bool,

    /// Read input lines from FILE instead of standard input
    #[arg(long, short = 'i', value_name = "FILE")]
    input: Option<PathBuf>,

    /// Print the number of tasks, wall time and tasks/s to standard error at the end
    #[arg(long)]
    stats: bool,

    /// Never show a progress bar (it is shown only when stderr is a terminal)
    #[arg(long)]
    no_progress: bool,

    #[command(flatten)]
    sandbox: super::sandbox::SandboxArgs,

    #[command(flatten)]
    cluster: super::cluster::ClusterArgs,
}

impl PoolCommand {
    pub(crate) fn execute(self, cache: &mpwasm::Cache) -> anyhow::Result<ExitCode> {
        let start = Instant::now();
        let reader: Box<dyn BufRead> = match &self.input {
            Some(path) => {
                Box::new(BufReader::new(File::open(path).with_context(|| {
                    format!("{}: cannot open input", path.display())
                })?))
            }
            None => Box::new(io::stdin().lock()),
        };
        let mut builder = Pool::builder(&self.guest)
            .cache(cache.clone())
            .guest_stdout_to_stderr(true);
        if let Some(n) = self.processes {
            builder = builder.processes(n);
        }
        if let Some(n) = self.chunksize {
            builder = builder.chunksize(n);
        }
        if let Some(cluster) = self.cluster.options()? {
            builder = builder.cluster_options(cluster);
        }
        let pool = self.sandbox.apply(builder)?.build()?;
        let task = self.pick_task(&pool)?;

        let read_error = Rc::new(RefCell::new(None));
        let inputs = lines(reader, read_error.clone());
        let progress = self.progress_bar();
        let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
        let mut summary = Summary::default();
        for item in pool.imap_raw(&task, Codec::Json, inputs, !self.unordered) {
            let written = match item {
                Ok((index, bytes)) => write_result(&mut out, index, &bytes, &mut summary),
                Err(Error::Task(e)) => write_failure(&mut out, &e, &mut summary),
                Err(e) => return Err(e.into()),
            };
            if let Err(e) = written {
                if e.kind() == io::ErrorKind::BrokenPipe {
                    return Ok(ExitCode::SUCCESS);
                }
                return Err(e).context("cannot write to standard output");
            }
            progress.inc(1);
        }
        match out.flush() {
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
                return Err(e).context("cannot write to standard output")
            }
            _ => {}
        }
        progress.finish_and_clear();
        if let Some(e) = read_error.borrow_mut().take() {
            return Err(e).context("cannot read input");
        }
        if self.stats {
            let secs = start.elapsed().as_secs_f64();
            eprintln!(
                "tasks: {}  failed: {}  wall: {:.3} s  rate: {:.0} tasks/s",
                summary.total,
                summary.failed,
                secs,
                summary.total as f64 / secs
            );
        }
        if let Some(first) = &summary.first_failure {
            eprintln!(
                "mpwasm: {} of {} tasks failed; first: {first}",
                summary.failed, summary.total
            );
            return Ok(ExitCode::from(1));
        }
        Ok(ExitCode::SUCCESS)
    }

    /// The task named with --task, or the guest's only task.
    fn pick_task(&self, pool: &Pool) -> anyhow::Result<String> {
        let available = pool.task_names()?;
        let guest = self.guest.display();
        match &self.task {
            Some(task) if available.contains(task) => Ok(task.clone()),
            Some(task) => bail!(
                "{guest}: no task named `{task}` (tasks: {})",
                available.join(", ")
            ),
            None if available.len() == 1 => Ok(available[0].clone()),
            None if available.is_empty() => bail!("{guest}: exports no tasks"),
            None => bail!(
                "{guest}: exports several tasks, choose one with --task ({})",
                available.join(", ")
            ),
        }
    }

    fn progress_bar(&self) -> ProgressBar {
        if self.no_progress || !io::stderr().is_terminal() {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new_spinner();
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} {human_pos} tasks  {per_sec:1}  {elapsed}")
        {
            bar.set_style(style);
        }
        bar
    }
}

/// Input lines as byte vectors (without the line end), stopping at the
/// first read error, which is kept for the caller.
fn lines(
    reader: Box<dyn BufRead>,
    error: Rc<RefCell<Option<io::Error>>>,
) -> impl Iterator<Item = Vec<u8>> {
    reader.split(b'\n').map_while(move |line| match line {
        Ok(mut line) => {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            Some(line)
        }
        Err(e) => {
            *error.borrow_mut() = Some(e);
            None
        }
    })
}

#[derive(Default)]
struct Summary {
    total: u64,
    failed: u64,
    first_failure: Option<String>,
}

/// Writes one result line (see [`super::json_lines`]). The guest is
/// untrusted: a result that is not one valid JSON value is reported as that
/// input's failure instead.
fn write_result(
    out: &mut impl Write,
    index: u64,
    bytes: &[u8],
    summary: &mut Summary,
) -> io::Result<()> {
    match super::json_lines::write_result(out, bytes) {
        Ok(()) => {
            summary.total += 1;
            Ok(())
        }
        Err(LineError::Io(e)) => Err(e),
        Err(LineError::Invalid(why)) => {
            let e = TaskError {
                index,
                kind: mpwasm::TaskErrorKind::BadOutput,
                message: format!("the guest returned invalid JSON: {why}"),
                backtrace: None,
            };
            write_failure(out, &e, summary)
        }
    }
}

fn write_failure(out: &mut impl Write, e: &TaskError, summary: &mut Summary) -> io::Result<()> {
    summary.total += 1;
    summary.failed += 1;
    if summary.first_failure.is_none() {
        summary.first_failure = Some(e.to_string());
    }
    let line = serde_json::json!({
        "error": format!("{}: {}", e.kind, e.message),
        "kind": e.kind.as_str(),
        "index": e.index,
    });
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}
