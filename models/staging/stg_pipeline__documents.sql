with

source as (

    select * from {{ source('pipeline', 'documents') }}

)

select * from source
