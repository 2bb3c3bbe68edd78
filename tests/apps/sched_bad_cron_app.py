"""An app whose schedule has an invalid cron string: importing it fails, naming the cron."""

from wakaq import WakaQ

app = WakaQ(queues=["default"], schedules=[("61 * * * *", "tick")])
