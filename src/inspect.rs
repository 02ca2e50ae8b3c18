//! Packets and streams as JSON: the contract of `ringswim decode` / `ringswim encode`.
