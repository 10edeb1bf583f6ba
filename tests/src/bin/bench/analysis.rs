//! The local analyzer on the labelled sets' held-out part (`tests/data/analysis/*.jsonl`, as compiled in,
//! `split` = heldout; the tune part is what the lexicons were tuned on): intent macro-F1,
//! intent accuracy, sentiment accuracy; and transcripts analysed per second on one core.

use std::time::{Duration, Instant};

use waihu_analyzer::{eval, Analyzer};

pub struct Quality {
    pub heldout: eval::Report,
    pub tune: eval::Report,
    pub per_second: f64,
    pub chars_per_transcript: f64,
}

pub fn run() -> Result<Quality, String> {
    let items = eval::sets()?;
    let analyzer = Analyzer::new();
    let heldout: Vec<&eval::Labelled> = items.iter().filter(|l| l.split == "heldout").collect();
    let tune: Vec<&eval::Labelled> = items.iter().filter(|l| l.split == "tune").collect();
    let q_held = eval::evaluate(&analyzer, &heldout);
    let q_tune = eval::evaluate(&analyzer, &tune);
    // Throughput: every transcript, over and over, on this thread, for two seconds.
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed() < Duration::from_secs(2) {
        for it in &items {
            std::hint::black_box(analyzer.analyze(&it.transcript));
            n += 1;
        }
    }
    let chars: usize = items.iter().map(|i| i.transcript.chars().count()).sum();
    Ok(Quality {
        heldout: q_held,
        tune: q_tune,
        per_second: n as f64 / t0.elapsed().as_secs_f64(),
        chars_per_transcript: chars as f64 / items.len().max(1) as f64,
    })
}
