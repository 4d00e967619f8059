"""What the wizard shows, as rows and words shared by every face: Rich, headless lines and the screens."""
