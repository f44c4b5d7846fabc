"""Domain operations. Each public function takes a session and runs one business operation."""
