//! Confluent-style compatibility policies over a candidate and its earlier versions.
