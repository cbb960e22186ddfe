from support.smtp import *  # noqa: F403  moved: import from support.smtp
