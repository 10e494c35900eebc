//! The PostgreSQL store (written next).
