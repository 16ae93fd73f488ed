//! Migrations compiled into the binary (no files to ship next to it), applied by sqlx's
//! migrator, which records them in `_sqlx_migrations`, refuses edited ones and, on
//! PostgreSQL, holds an advisory lock so replicas starting together migrate once.
//!
//! Each backend has its own SQL under `migrations/<backend>/`; both describe the same tables.
//! Never edit an applied migration: add the next number.

use std::borrow::Cow;

use sqlx::error::BoxDynError;
use sqlx::migrate::{MigrateError, Migration, MigrationSource, MigrationType, Migrator};

#[derive(Debug, Clone, Copy)]
pub(super) struct EmbeddedMigration {
    pub version: i64,
    pub description: &'static str,
    pub sql: &'static str,
}

#[derive(Debug)]
struct Embedded(&'static [EmbeddedMigration]);

impl MigrationSource<'static> for Embedded {
    fn resolve(
        self,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Vec<Migration>, BoxDynError>> + Send>,
    > {
        let migrations = self
            .0
            .iter()
            .map(|m| {
                Migration::new(
                    m.version,
                    Cow::Borrowed(m.description),
                    MigrationType::Simple,
                    Cow::Borrowed(m.sql),
                    false,
                )
            })
            .collect();
        Box::pin(std::future::ready(Ok(migrations)))
    }
}

pub(super) async fn migrator(
    migrations: &'static [EmbeddedMigration],
) -> Result<Migrator, MigrateError> {
    Migrator::new(Embedded(migrations)).await
}
