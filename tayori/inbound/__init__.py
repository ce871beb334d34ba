"""Mail coming back: bounces, complaints and empty-mail sign-ups (tayori mx and provider feeds)."""
