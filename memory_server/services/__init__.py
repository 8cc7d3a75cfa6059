"""Services do the work; routes and scheduled jobs call them."""
