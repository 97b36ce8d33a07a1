"""Trust Ledger's domain: relationships as event streams, trust, the push gate. No framework here."""
