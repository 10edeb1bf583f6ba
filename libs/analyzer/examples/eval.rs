//! `cargo run -p waihu-analyzer --example eval -- <split> [--cv K] [--bench] [files...]`:
//! scores the analyzer on a split (`tune` while tuning; `heldout` only to report) of the
//! labelled sets, prints the confusion and the misses.
//!
//! `--cv K` (tune only): K-fold cross-validation within the split; each transcript is scored by
//! an analyzer whose naive Bayes model was trained on the other K-1 folds (the lexicons are the
//! same for all). `--explain ID` shows one transcript's analysis and rule scores. `--bench` also times analysing every transcript of the sets 20 times.

use std::time::Instant;

use waihu_analyzer::{eval, nb, rules, turns, Analyzer};

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let split = args.next().unwrap_or_else(|| "tune".into());
    let mut files: Vec<String> = Vec::new();
    let mut folds = 0usize;
    let mut bench = false;
    let mut explain: Option<String> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--cv" => {
                folds = args
                    .next()
                    .and_then(|k| k.parse().ok())
                    .filter(|k| *k >= 2)
                    .ok_or("--cv wants a number of folds (2 or more)")?;
            }
            "--bench" => bench = true,
            "--explain" => explain = args.next(),
            _ => files.push(a),
        }
    }
    if folds > 0 && split != "tune" {
        return Err("--cv is for the tune split only".into());
    }
    // The committed sets by default; files given, those.
    let mut items = if files.is_empty() {
        eval::sets()?
    } else {
        Vec::new()
    };
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{f}: {e}"))?;
        items.extend(eval::parse(&text).map_err(|e| format!("{f}: {e}"))?);
    }
    let chosen: Vec<&eval::Labelled> = items.iter().filter(|l| l.split == split).collect();
    if let Some(id) = explain {
        let a = Analyzer::new();
        for l in chosen.iter().filter(|l| l.id == id) {
            println!("{}\nwant {}/{}", l.transcript, l.intent, l.sentiment);
            println!("{:?}", a.analyze(&l.transcript));
            println!("{:?}", a.intent_scores(&l.transcript));
            let lex = rules::Lexicon::load();
            let mut named: Vec<(&str, &rules::Cues)> =
                lex.intents.iter().map(|(i, c)| (i.name(), c)).collect();
            named.push(("positive", &lex.positive));
            named.push(("negative", &lex.negative));
            for t in turns::turns(&l.transcript) {
                let lower = t.text.to_lowercase();
                let mut hits = Vec::new();
                for (name, cues) in &named {
                    for (p, w) in cues.iter() {
                        let one = vec![(p.clone(), *w)];
                        let s = rules::score(&t.text, &lower, &one, false);
                        if s != 0.0 {
                            hits.push(format!("{name}:{p}={s}"));
                        }
                    }
                }
                println!("  {:?} {} => {}", t.speaker, t.text, hits.join(" "));
            }
        }
        return Ok(());
    }
    let r = if folds > 0 {
        // Fold of the i-th transcript: i mod K (the sets interleave intents and domains).
        let analyzers: Vec<Analyzer> = (0..folds)
            .map(|k| {
                let train: Vec<&eval::Labelled> = chosen
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % folds != k)
                    .map(|(_, l)| *l)
                    .collect();
                Analyzer::with_model(nb::Model::intents_from(&train))
            })
            .collect();
        eval::evaluate_with(&chosen, |i, it| {
            analyzers[i % folds].analyze(&it.transcript)
        })
    } else {
        eval::evaluate(&Analyzer::new(), &chosen)
    };
    for (id, want, got) in &r.misses {
        println!("miss {id}: want {want} got {got}");
    }
    for ((w, g), n) in &r.confusion {
        if w != g {
            println!("confusion {w} -> {g}: {n}");
        }
    }
    let cv = if folds > 0 {
        format!(" ({folds}-fold cv)")
    } else {
        String::new()
    };
    println!(
        "{split}{cv}: n={} intent accuracy {:.3} macro-F1 {:.3} sentiment accuracy {:.3}",
        r.n, r.intent_accuracy, r.intent_macro_f1, r.sentiment_accuracy
    );
    if bench {
        let a = Analyzer::new();
        let all: Vec<&str> = items.iter().map(|l| l.transcript.as_str()).collect();
        let start = Instant::now();
        for _ in 0..20 {
            for t in &all {
                std::hint::black_box(a.analyze(t));
            }
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "throughput: {:.0} transcripts/s ({} analysed in {secs:.2} s, one thread)",
            (all.len() * 20) as f64 / secs,
            all.len() * 20
        );
    }
    Ok(())
}
