"""Champion and challenger: live comparisons of model versions on editors' reviews."""
