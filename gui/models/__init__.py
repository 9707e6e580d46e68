"""Qt item models over status values (read-only; rebuilt from each snapshot)."""
