"""Pull mode: tokens, the certificate pin, the spec server and its client (see _support)."""
