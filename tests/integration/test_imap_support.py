from support.imap import *  # noqa: F403  moved: import from support.imap
