"""Pure metering logic: splitting usage into hours, attributing it to departments, rating it. No I/O."""
