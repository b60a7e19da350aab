"""Record and replay: real providers' answers recorded once into cassettes, replayed offline."""
