//! `waihu webhook add|list|test|remove|deliveries|redeliver`: the tenant's webhook
//! subscriptions (the record service's `WebhookService`).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use waihu_proto::v1::{self as pb, webhook_service_client::WebhookServiceClient};

use crate::{export, status, task::with_tenant, Cli, CliError};

#[derive(Subcommand)]
pub enum WebhookCommand {
    /// Subscribe a URL; prints the subscription and its signing secret (shown only now).
    Add(AddArgs),
    /// The tenant's subscriptions with their delivery counts.
    List,
    /// POST a signed `webhook.test` body to a subscription's URL now and show the answer.
    Test { webhook_id: String },
    /// Remove a subscription and its pending deliveries.
    Remove { webhook_id: String },
    /// A subscription's deliveries, newest first.
    Deliveries(DeliveriesArgs),
    /// Send deliveries again: the named ones, or every dead one of the subscription.
    Redeliver {
        webhook_id: String,
        /// Delivery ids (default: all dead ones).
        delivery_ids: Vec<String>,
    },
}

#[derive(Args)]
pub struct AddArgs {
    /// Where deliveries are POSTed (http or https).
    #[arg(long)]
    url: String,
    /// An event type to receive (repeat for more): call.released, contact.finished,
    /// task.status, analysis.completed.
    #[arg(long = "event", value_name = "TYPE", required = true)]
    events: Vec<String>,
    /// The signing secret (16-200 characters); default: a random one.
    #[arg(long, env = "WAIHU_WEBHOOK_SECRET", hide_env_values = true)]
    secret: Option<String>,
}

#[derive(Args)]
pub struct DeliveriesArgs {
    webhook_id: String,
    /// Only this state.
    #[arg(long, value_parser = ["pending", "delivered", "dead"])]
    state: Option<String>,
    /// At most this many (newest first).
    #[arg(long, default_value_t = 50)]
    limit: u32,
}

pub async fn run(cli: &Cli, cmd: &WebhookCommand) -> Result<ExitCode, CliError> {
    let mut c = WebhookServiceClient::new(crate::record_channel(cli).await?);
    let tenant = cli.tenant.as_str();
    match cmd {
        WebhookCommand::Add(a) => {
            let w = c
                .create_webhook(with_tenant(
                    tenant,
                    pb::CreateWebhookRequest {
                        url: a.url.clone(),
                        event_types: a.events.clone(),
                        secret: a.secret.clone().unwrap_or_default(),
                    },
                )?)
                .await
                .map_err(|s| status("CreateWebhook", s))?
                .into_inner();
            println!("{}", line(&w));
            println!("secret {}", w.secret);
            eprintln!("keep the secret: it is not shown again");
        }
        WebhookCommand::List => {
            let list = c
                .list_webhooks(with_tenant(tenant, pb::ListWebhooksRequest {})?)
                .await
                .map_err(|s| status("ListWebhooks", s))?
                .into_inner();
            if list.webhooks.is_empty() {
                println!("no webhooks");
            }
            for w in &list.webhooks {
                println!("{}", line(w));
            }
        }
        WebhookCommand::Test { webhook_id } => {
            let r = c
                .test_webhook(with_tenant(
                    tenant,
                    pb::TestWebhookRequest {
                        webhook_id: webhook_id.clone(),
                    },
                )?)
                .await
                .map_err(|s| status("TestWebhook", s))?
                .into_inner();
            println!(
                "{} status {} in {} ms{}{}",
                if r.ok { "ok" } else { "failed" },
                r.status,
                r.latency_ms,
                if r.error.is_empty() { "" } else { ": " },
                r.error
            );
            if !r.ok {
                return Ok(ExitCode::FAILURE);
            }
        }
        WebhookCommand::Remove { webhook_id } => {
            c.delete_webhook(with_tenant(
                tenant,
                pb::DeleteWebhookRequest {
                    webhook_id: webhook_id.clone(),
                },
            )?)
            .await
            .map_err(|s| status("DeleteWebhook", s))?;
            println!("removed {webhook_id}");
        }
        WebhookCommand::Deliveries(a) => deliveries(&mut c, cli, a).await?,
        WebhookCommand::Redeliver {
            webhook_id,
            delivery_ids,
        } => {
            let r = c
                .redeliver_webhooks(with_tenant(
                    tenant,
                    pb::RedeliverWebhooksRequest {
                        webhook_id: webhook_id.clone(),
                        delivery_ids: delivery_ids.clone(),
                    },
                )?)
                .await
                .map_err(|s| status("RedeliverWebhooks", s))?
                .into_inner();
            println!("{} deliveries queued again", r.redelivered);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn deliveries(
    c: &mut WebhookServiceClient<tonic::transport::Channel>,
    cli: &Cli,
    a: &DeliveriesArgs,
) -> Result<(), CliError> {
    let state = match a.state.as_deref() {
        Some("pending") => pb::DeliveryState::Pending,
        Some("delivered") => pb::DeliveryState::Delivered,
        Some("dead") => pb::DeliveryState::Dead,
        _ => pb::DeliveryState::Unspecified,
    };
    let mut left = a.limit;
    let mut token = String::new();
    while left > 0 {
        let page = c
            .list_webhook_deliveries(with_tenant(
                &cli.tenant,
                pb::ListWebhookDeliveriesRequest {
                    webhook_id: a.webhook_id.clone(),
                    state: state as i32,
                    page_size: left.min(1000),
                    page_token: token,
                },
            )?)
            .await
            .map_err(|s| status("ListWebhookDeliveries", s))?
            .into_inner();
        for d in &page.deliveries {
            let state = pb::DeliveryState::try_from(d.state)
                .unwrap_or_default()
                .as_str_name()
                .trim_start_matches("DELIVERY_STATE_")
                .to_ascii_lowercase();
            println!(
                "{}  {:<17} {:<9} attempts {:<2} last {:<3} {}  {}",
                d.delivery_id,
                d.event_type,
                state,
                d.attempts,
                d.last_status,
                d.created_at
                    .as_ref()
                    .map(export::rfc3339)
                    .unwrap_or_default(),
                d.last_error
            );
        }
        left = left.saturating_sub(page.deliveries.len() as u32);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    Ok(())
}

fn line(w: &pb::Webhook) -> String {
    format!(
        "{}  {}  [{}]  pending {} delivered {} dead {}",
        w.webhook_id,
        w.url,
        w.event_types.join(", "),
        w.pending,
        w.delivered,
        w.dead
    )
}
