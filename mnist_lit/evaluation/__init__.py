"""What `test` reports and TensorBoard shows: the report, its figures, the logger."""
