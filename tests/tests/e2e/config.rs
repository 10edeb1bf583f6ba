//! `deploy/waihu.example.toml` documents every setting with its default: loaded through the one
//! loader it must give each service exactly the configuration it has with no file at all.

use waihu_runtime::config::Layers;

fn layers(file: Option<&str>) -> Layers {
    let vars = file.map(|f| ("WAIHU_CONFIG".to_string(), f.to_string()));
    Layers::from_vars(vars).expect("layers")
}

#[test]
fn the_example_file_holds_every_default() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/waihu.example.toml");
    let (with, without) = (layers(Some(example)), layers(None));
    assert_eq!(
        format!(
            "{:?}",
            waihu_gateway::GatewayConfig::from_layers(&with).expect("gateway")
        ),
        format!(
            "{:?}",
            waihu_gateway::GatewayConfig::from_layers(&without).expect("gateway")
        )
    );
    assert_eq!(
        format!(
            "{:?}",
            waihu_task::TaskConfig::from_layers(&with).expect("task")
        ),
        format!(
            "{:?}",
            waihu_task::TaskConfig::from_layers(&without).expect("task")
        )
    );
    assert_eq!(
        format!(
            "{:?}",
            waihu_dialer::DialerConfig::from_layers(&with).expect("dialer")
        ),
        format!(
            "{:?}",
            waihu_dialer::DialerConfig::from_layers(&without).expect("dialer")
        )
    );
    assert_eq!(
        format!(
            "{:?}",
            waihu_provider::ProviderConfig::from_layers(&with).expect("provider")
        ),
        format!(
            "{:?}",
            waihu_provider::ProviderConfig::from_layers(&without).expect("provider")
        )
    );
    assert_eq!(
        format!(
            "{:?}",
            waihu_record::RecordConfig::from_layers(&with).expect("record")
        ),
        format!(
            "{:?}",
            waihu_record::RecordConfig::from_layers(&without).expect("record")
        )
    );
    assert_eq!(
        format!(
            "{:?}",
            waihu_analysis::AnalysisConfig::from_layers(&with).expect("analysis")
        ),
        format!(
            "{:?}",
            waihu_analysis::AnalysisConfig::from_layers(&without).expect("analysis")
        )
    );
    let text = std::fs::read_to_string(example).expect("example");
    for key in [
        "fill_ms",
        "synchronous_commit",
        "max_in_flight",
        "time_scale",
        "call_timeout_seconds",
        "max_bytes",
        "retention_days",
        "url_key",
        "recording_scale",
        "asr_grace_s",
        "by_tenant",
    ] {
        assert!(text.contains(key), "{key} is documented");
    }
}
