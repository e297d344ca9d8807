"""Usage aggregation for staff: one set of queries behind the dashboard, the CSV export and the pam_usage command."""
