"""PAM Hybrid: a chat gateway that routes each query to a fast or a strong model and streams the answer."""
