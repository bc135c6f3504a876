"""Real data shipped inside the package (no downloads): the Twemoji 32x32 set (`latentvar.data.twemoji`)."""
