module imagegate.local/pause

go 1.24
