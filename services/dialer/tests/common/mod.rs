//! What the dialer's database tests share.

use waihu_testkit::TestEnv;

/// A pool on the dialer's schema in `env`'s database, migrated.
pub async fn dialer_pool(env: &TestEnv) -> sqlx::PgPool {
    env.config()
        .open_database(waihu_dialer::SCHEMA, &waihu_dialer::MIGRATOR)
        .await
        .expect("dialer schema")
}
