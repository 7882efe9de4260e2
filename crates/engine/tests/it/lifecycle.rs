//! Engine behaviour over the memory store.
