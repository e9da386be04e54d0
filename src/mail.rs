//! Outgoing e-mail. SMTP through lettre when `smtp_url` is set; otherwise messages are
//! written to the log, which is what a single developer node wants.
//!
//! Mail is always sent from a durable job (see [`crate::jobs`]), never inside a request:
//! a slow or failing SMTP server delays a message and retries it, it never fails a request.

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};

/// One message.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Mail {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
}

/// Where mail goes.
#[derive(Clone)]
pub enum Mailer {
    /// A real SMTP server.
    Smtp {
        /// Pooled transport (boxed: it is large and the enum is cloned around).
        transport: Box<AsyncSmtpTransport<Tokio1Executor>>,
        /// `From:` mailbox.
        from: Mailbox,
    },
    /// The log.
    Log,
}

impl Mailer {
    /// From configuration.
    pub fn new(smtp_url: Option<&str>, from: &str) -> anyhow::Result<Self> {
        match smtp_url {
            None => Ok(Mailer::Log),
            Some(url) => Ok(Mailer::Smtp {
                transport: Box::new(AsyncSmtpTransport::<Tokio1Executor>::from_url(url)?.build()),
                from: from.parse()?,
            }),
        }
    }

    /// Sends one message.
    pub async fn send(&self, mail: &Mail) -> anyhow::Result<()> {
        match self {
            Mailer::Log => {
                tracing::info!(to = %mail.to, subject = %mail.subject, body = %mail.text, "e-mail (no SMTP configured)");
                Ok(())
            }
            Mailer::Smtp { transport, from } => {
                let msg = Message::builder()
                    .from(from.clone())
                    .to(mail.to.parse()?)
                    .subject(&mail.subject)
                    .body(mail.text.clone())?;
                transport.send(msg).await?;
                Ok(())
            }
        }
    }
}
