//! Call records as a file (issue 9): ExportCallRecords writes every record the filters select,
//! as CSV or XLSX, with Chinese or English headers, and refuses bad requests naming the field.

use std::{collections::BTreeSet, io::Read, time::Duration};

use waihu_e2e::*;
use waihu_events::pb;

/// The whole file an export streams, and the record count its last chunk carries.
async fn export(cluster: &Cluster, req: pb::ExportCallRecordsRequest) -> (Vec<u8>, u64, String) {
    let mut stream = cluster
        .records()
        .await
        .export_call_records(req)
        .await
        .expect("export")
        .into_inner();
    let (mut data, mut records, mut content_type) = (Vec::new(), 0, String::new());
    while let Some(c) = stream.message().await.expect("chunk") {
        if content_type.is_empty() {
            content_type = c.content_type.clone();
        }
        data.extend_from_slice(&c.data);
        records = c.records;
    }
    (data, records, content_type)
}

fn filter(task: &str) -> pb::ListCallRecordsRequest {
    pb::ListCallRecordsRequest {
        task_id: task.into(),
        ..Default::default()
    }
}

/// The XLSX's first sheet as rows of cell texts (shared strings resolved, numbers as written).
fn xlsx_rows(bytes: &[u8]) -> Vec<Vec<String>> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("an XLSX is a zip");
    let mut sheet = String::new();
    zip.by_name("xl/worksheets/sheet1.xml")
        .expect("sheet 1")
        .read_to_string(&mut sheet)
        .expect("sheet text");
    // Constant memory mode writes strings inline (<is><t>..</t></is>) or shared.
    let mut shared = Vec::new();
    if let Ok(mut f) = zip.by_name("xl/sharedStrings.xml") {
        let mut s = String::new();
        f.read_to_string(&mut s).expect("strings");
        for part in s.split("<si>").skip(1) {
            shared.push(text_of(part));
        }
    }
    sheet
        .split("<row ")
        .skip(1)
        .map(|row| {
            // Cells by their reference (empty ones are not written).
            let mut cells = Vec::new();
            for c in row.split("<c ").skip(1) {
                let col = between(c, "r=\"", "\"")
                    .chars()
                    .take_while(char::is_ascii_uppercase)
                    .fold(0usize, |n, ch| n * 26 + (ch as usize - 'A' as usize + 1))
                    - 1;
                let value = if c.contains("t=\"s\"") {
                    let i: usize = between(c, "<v>", "</v>").parse().expect("index");
                    shared[i].clone()
                } else if c.contains("<is>") {
                    text_of(c)
                } else {
                    between(c, "<v>", "</v>").to_string()
                };
                if cells.len() <= col {
                    cells.resize(col + 1, String::new());
                }
                cells[col] = value;
            }
            cells
        })
        .collect()
}

fn between<'a>(s: &'a str, a: &str, b: &str) -> &'a str {
    let start = s.find(a).map(|i| i + a.len()).unwrap_or(0);
    let end = s[start..].find(b).map(|i| start + i).unwrap_or(start);
    &s[start..end]
}

fn text_of(s: &str) -> String {
    let t = s
        .find("<t")
        .and_then(|i| s[i..].find('>').map(|j| i + j + 1));
    match t {
        Some(start) => {
            let end = s[start..].find("</t>").map(|i| start + i).unwrap_or(start);
            s[start..end].to_string()
        }
        None => String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_goes_to_csv_and_xlsx_with_either_headers() {
    let cluster = Cluster::start(fast_sim(4242), one_line(20)).await;
    let mut tasks = cluster.tasks().await;
    let contacts = 60;
    let task = create_with_contacts(&mut tasks, spec("export", 1, 0), &phones(contacts, 77)).await;
    run_to_completion(&mut tasks, &task, Duration::from_secs(60)).await;
    let stats = wait_stats_settled(&cluster, &task, contacts as u64, Duration::from_secs(30)).await;
    let calls = stats.calls_placed;
    assert!(calls > contacts as u64, "some recalls: {calls}");

    // CSV, Chinese headers (the default), newest first: one row per call.
    let (data, records, content_type) = export(
        &cluster,
        pb::ExportCallRecordsRequest {
            filter: Some(filter(&task)),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(records, calls);
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let text = String::from_utf8(data).expect("UTF-8");
    let text = text
        .strip_prefix('\u{feff}')
        .expect("a byte-order mark for Excel");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().expect("headers").clone();
    assert_eq!(&headers[0], "记录ID");
    assert_eq!(&headers[4], "电话号码");
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len() as u64, calls);
    let ids: BTreeSet<&str> = rows.iter().map(|r| &r[1]).collect();
    assert_eq!(ids.len() as u64, calls, "each call once");
    let answered = rows.iter().filter(|r| &r[12] == "是").count() as u64;
    assert_eq!(answered, stats.calls_answered);
    let talk: f64 = rows
        .iter()
        .map(|r| r[11].parse::<f64>().expect("talk"))
        .sum();
    assert!((talk - stats.total_talk_seconds as f64).abs() < 1.0 + calls as f64 / 1000.0);

    // Filtered: answered only, English headers.
    let (data, records, _) = export(
        &cluster,
        pb::ExportCallRecordsRequest {
            filter: Some(pb::ListCallRecordsRequest {
                answered: Some(true),
                ..filter(&task)
            }),
            language: "en".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(records, stats.calls_answered);
    let text = String::from_utf8(data).expect("UTF-8");
    let mut reader = csv::Reader::from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    assert_eq!(&reader.headers().expect("headers")[4], "phoneNumber");
    assert!(reader.records().all(|r| &r.expect("row")[12] == "yes"));

    // XLSX: the same rows, in the sort asked for (talk time, longest first).
    let (data, records, content_type) = export(
        &cluster,
        pb::ExportCallRecordsRequest {
            filter: Some(pb::ListCallRecordsRequest {
                sort: pb::CallRecordSort::Duration as i32,
                ..filter(&task)
            }),
            format: pb::ExportFormat::Xlsx as i32,
            language: "en".into(),
        },
    )
    .await;
    assert_eq!(records, calls);
    assert!(content_type.contains("spreadsheetml"), "{content_type}");
    let rows = xlsx_rows(&data);
    assert_eq!(
        rows.len() as u64,
        calls + 1,
        "a header and one row per call"
    );
    assert_eq!(rows[0][0], "recordId");
    let talks: Vec<f64> = rows[1..]
        .iter()
        .map(|r| r[11].parse().expect("talk seconds as a number"))
        .collect();
    assert!(talks.windows(2).all(|w| w[0] >= w[1]), "{talks:?}");

    // Bad requests name their field; another tenant exports nothing of this one's.
    let mut records_client = cluster.records().await;
    for (req, field) in [
        (
            pb::ExportCallRecordsRequest {
                format: 7,
                ..Default::default()
            },
            "format",
        ),
        (
            pb::ExportCallRecordsRequest {
                language: "fr".into(),
                ..Default::default()
            },
            "language",
        ),
        (
            pb::ExportCallRecordsRequest {
                filter: Some(pb::ListCallRecordsRequest {
                    phone: "not a phone".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            "phone",
        ),
    ] {
        let e = records_client
            .export_call_records(req)
            .await
            .expect_err(field);
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{field}");
        assert!(e.message().contains(field), "{}", e.message());
    }
    let mut stream = records_client
        .export_call_records(as_tenant(
            "other",
            pb::ExportCallRecordsRequest {
                filter: Some(filter(&task)),
                ..Default::default()
            },
        ))
        .await
        .expect("export")
        .into_inner();
    let mut n = 0;
    while let Some(c) = stream.message().await.expect("chunk") {
        n = c.records;
    }
    assert_eq!(n, 0);
    cluster.shutdown().await;
}
