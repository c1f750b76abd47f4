"""Running the app: the Slack client, pacing, OAuth, the scheduler, Socket Mode and HTTP serving."""
