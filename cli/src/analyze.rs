//! `waihu analyze <file|->` and `waihu analyze --jsonl <file|->`: the local analyzer on an
//! analyst's own transcripts, with no service and no network.

use std::{
    io::{BufRead, Read, Write},
    path::PathBuf,
    process::ExitCode,
};

use clap::Args;
use serde_json::{json, Value};
use waihu_analyzer::{Analysis, Analyzer};

use crate::CliError;

#[derive(Args)]
pub struct AnalyzeArgs {
    /// A transcript file ("-": standard input): one line per turn, optionally labelled
    /// (坐席：/客户：, Agent:/Customer:).
    input: PathBuf,
    /// The input is JSON lines of {"id", "transcript"} (other fields ignored); writes one JSON
    /// line per input with its id.
    #[arg(long)]
    jsonl: bool,
}

fn json_of(a: &Analysis) -> Value {
    json!({
        "intent": a.intent.name(),
        "grade": a.grade,
        "sentiment": a.sentiment.name(),
        "keywords": a.keywords,
        "summary": a.summary,
        "language": a.language,
    })
}

fn open(path: &PathBuf) -> Result<Box<dyn BufRead>, CliError> {
    if path.as_os_str() == "-" {
        Ok(Box::new(std::io::BufReader::new(std::io::stdin())))
    } else {
        let f = std::fs::File::open(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Ok(Box::new(std::io::BufReader::new(f)))
    }
}

pub fn run(a: &AnalyzeArgs) -> Result<ExitCode, CliError> {
    let analyzer = Analyzer::new();
    let input = open(&a.input)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if !a.jsonl {
        // The analyzer reads the first 50,000 characters: at most 200 KB are read.
        let mut bytes = Vec::new();
        input.take(200_000).read_to_end(&mut bytes)?;
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            // Cut inside a character at the limit: up to the last whole one.
            Err(e) if e.utf8_error().error_len().is_none() => {
                let valid = e.utf8_error().valid_up_to();
                let mut b = e.into_bytes();
                b.truncate(valid);
                String::from_utf8(b).map_err(|e| format!("{}: {e}", a.input.display()))?
            }
            Err(e) => return Err(format!("{}: not UTF-8 text ({e})", a.input.display()).into()),
        };
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&json_of(&analyzer.analyze(&text)))?
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut bad = 0usize;
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(|e| format!("line {}: {e}", i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                bad += 1;
                eprintln!("line {}: not JSON ({e}); skipped", i + 1);
                continue;
            }
        };
        let Some(transcript) = v.get("transcript").and_then(Value::as_str) else {
            bad += 1;
            eprintln!("line {}: no \"transcript\" string; skipped", i + 1);
            continue;
        };
        let mut row = json_of(&analyzer.analyze(transcript));
        row["id"] = v.get("id").cloned().unwrap_or(Value::Null);
        writeln!(out, "{row}")?;
    }
    out.flush()?;
    Ok(if bad > 0 {
        eprintln!("{bad} lines skipped");
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
