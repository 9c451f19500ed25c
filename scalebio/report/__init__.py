"""What users read: tables and figures per experiment (``tables``), the option reference (``docs``), the step benchmark."""
