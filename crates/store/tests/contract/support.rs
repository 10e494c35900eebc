//! Store factories for the contract cases.

use std::sync::Arc;

use flotilla_store::{RegistryStore, RolloutStore, SqliteStore, testing};

/// Both traits of one store, as every backend implements them.
pub trait Stores: RegistryStore + RolloutStore {}
impl<S: RegistryStore + RolloutStore> Stores for S {}

pub type Store = Arc<dyn Stores>;

pub async fn sqlite() -> Store {
    Arc::new(
        SqliteStore::open_in_memory()
            .await
            .expect("an in-memory store opens"),
    )
}

/// A PostgreSQL database made for one case, with a store connected to it.
pub struct TestDatabase {
    pub store: Store,
    pub url: String,
    database: testing::TestDatabase,
}

pub async fn postgres() -> Option<TestDatabase> {
    let admin_url = testing::admin_url()?;
    let database = testing::TestDatabase::create(&admin_url)
        .await
        .expect("the test role may create databases");
    let store =
        flotilla_store::PostgresStore::connect(flotilla_store::PostgresConfig::new(&database.url))
            .await
            .expect("the store connects and migrates");
    Some(TestDatabase {
        store: Arc::new(store),
        url: database.url.clone(),
        database,
    })
}

impl TestDatabase {
    pub async fn drop_database(self) {
        drop(self.store);
        self.database
            .drop_database()
            .await
            .expect("the test database drops");
    }
}
