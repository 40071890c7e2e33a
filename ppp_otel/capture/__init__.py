"""Recording on the app side: trajectory()/turn(), register(), turn numbering and the span processor."""
