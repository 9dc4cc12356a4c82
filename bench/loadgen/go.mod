module kms-secret-guard/bench/loadgen

go 1.24
